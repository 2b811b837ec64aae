package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/client-go/rest"
)

// The pieces below are the syncer view's upstream client, reviewer and error answers,
// exported for the server's other views (pod access) to authenticate, authorise and answer
// exactly as this one does.

// ClusterClient sends requests with one identity to <Host>/clusters/<cluster>/... of an
// upstream.
type ClusterClient struct{ client *clusterClient }

// NewClusterClient returns the client of cfg, whose Host is the upstream's root.
func NewClusterClient(cfg *rest.Config) (*ClusterClient, error) {
	client, err := newClusterClient(cfg)
	if err != nil {
		return nil, err
	}
	return &ClusterClient{client: client}, nil
}

// Get decodes the JSON object at apiPath in cluster into into; an error answer of the
// upstream is returned as an *apierrors.StatusError.
func (c *ClusterClient) Get(ctx context.Context, cluster, apiPath string, into any) error {
	_, body, err := c.client.do(ctx, http.MethodGet, cluster, apiPath, nil, "", nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("failed to decode the upstream answer: %w", err)
	}
	return nil
}

// Reviewer authenticates bearer tokens by TokenReview and authorises users by
// SubjectAccessReview in a workspace, caching positive answers.
type Reviewer struct{ reviews *reviewer }

// NewReviewer returns a reviewer creating its reviews with client and reusing positive
// answers for ttl.
func NewReviewer(client *ClusterClient, ttl time.Duration) *Reviewer {
	return &Reviewer{reviews: newReviewer(client.client, ttl)}
}

// Authenticate returns the user of token in cluster; nil (and no error) when the token is
// not valid there, and an *apierrors.StatusError NotFound when the cluster does not exist.
func (r *Reviewer) Authenticate(ctx context.Context, cluster, token string) (*authenticationv1.UserInfo, error) {
	return r.reviews.authenticate(ctx, cluster, token)
}

// Authorize reports whether user may do attrs in cluster, with the authoriser's reason when
// it may not.
func (r *Reviewer) Authorize(ctx context.Context, cluster string, user *authenticationv1.UserInfo, attrs authorizationv1.ResourceAttributes) (bool, string, error) {
	return r.reviews.authorizeAttributes(ctx, cluster, user, attrs)
}

// BearerToken returns the token of r's "Authorization: Bearer" header, "" without one.
func BearerToken(r *http.Request) string { return bearerToken(r) }

// WriteStatus answers with err as a Kubernetes Status (an error that is not an
// apierrors.APIStatus is a 500).
func WriteStatus(w http.ResponseWriter, err error) { writeError(w, err) }

// StatusRecorder remembers the status code of an answer for the metrics (200 until a header
// is written); flushes pass on (watches and logs stream through it), and hijacks reach the
// underlying writer through Unwrap (http.ResponseController, as httputil.ReverseProxy uses).
type StatusRecorder struct {
	http.ResponseWriter
	// Code is the answer's status code; a handler that answers through a hijacked
	// connection sets it itself (e.g. 101).
	Code        int
	wroteHeader bool
}

// NewStatusRecorder wraps w.
func NewStatusRecorder(w http.ResponseWriter) *StatusRecorder {
	return &StatusRecorder{ResponseWriter: w, Code: http.StatusOK}
}

func (w *StatusRecorder) WriteHeader(code int) {
	if !w.wroteHeader {
		w.Code, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *StatusRecorder) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

func (w *StatusRecorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *StatusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
