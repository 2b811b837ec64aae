package syncer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// maxBodyBytes bounds the request and response bodies the server reads itself (the
// apiserver's own limit is 3 MiB per object).
const maxBodyBytes = 4 << 20

// clusterClient sends requests with one identity to /clusters/<cluster>/... of an upstream.
type clusterClient struct {
	baseURL *url.URL
	http    *http.Client
}

func newClusterClient(cfg *rest.Config) (*clusterClient, error) {
	base, err := url.Parse(strings.TrimSuffix(cfg.Host, "/"))
	if err != nil {
		return nil, fmt.Errorf("failed to parse the upstream URL %q: %w", cfg.Host, err)
	}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to build the upstream client: %w", err)
	}
	return &clusterClient{baseURL: base, http: httpClient}, nil
}

// url returns the upstream URL of apiPath in cluster with query.
func (c *clusterClient) url(cluster, apiPath string, query url.Values) *url.URL {
	u := *c.baseURL
	u.Path = c.baseURL.Path + "/clusters/" + cluster + apiPath
	u.RawPath = ""
	u.RawQuery = query.Encode()
	return &u
}

// do sends one request and returns the status code and body; a non-2xx answer is returned
// as an error too (an *apierrors.StatusError when the body is a Status).
func (c *clusterClient) do(ctx context.Context, method, cluster, apiPath string, query url.Values, contentType string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(cluster, apiPath, query).String(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("failed to build the upstream request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("failed to reach the upstream: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("failed to read the upstream answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, respBody, statusError(resp.StatusCode, respBody)
	}
	return resp.StatusCode, respBody, nil
}

// object sends one request and decodes the answer as a JSON object.
func (c *clusterClient) object(ctx context.Context, method, cluster, apiPath, contentType string, body []byte) (map[string]any, error) {
	_, respBody, err := c.do(ctx, method, cluster, apiPath, nil, contentType, body)
	if err != nil {
		return nil, err
	}
	obj := map[string]any{}
	if err := json.Unmarshal(respBody, &obj); err != nil {
		return nil, fmt.Errorf("failed to decode the upstream answer: %w", err)
	}
	return obj, nil
}

// statusError turns an upstream error answer into an *apierrors.StatusError.
func statusError(code int, body []byte) error {
	st := metav1.Status{}
	if err := json.Unmarshal(body, &st); err == nil && st.Kind == "Status" {
		return &apierrors.StatusError{ErrStatus: st}
	}
	return apierrors.NewGenericServerResponse(code, "", metav1.SchemeGroupVersion.WithResource("").GroupResource(), "", strings.TrimSpace(string(body)), 0, false)
}
