package syncer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/util/cache"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// SyncVerb is the verb a syncer needs on its SyncTarget (kcp's rule).
const SyncVerb = "sync"

// authCacheSize bounds each cache of positive authentication and authorisation answers.
const authCacheSize = 4096

// reviewer authenticates bearer tokens by TokenReview and authorises users by
// SubjectAccessReview in a location workspace, caching positive answers for ttl.
type reviewer struct {
	client *clusterClient
	ttl    time.Duration
	users  *cache.LRUExpireCache
	grants *cache.LRUExpireCache
}

func newReviewer(client *clusterClient, ttl time.Duration) *reviewer {
	return &reviewer{client: client, ttl: ttl, users: cache.NewLRUExpireCache(authCacheSize), grants: cache.NewLRUExpireCache(authCacheSize)}
}

// bearerToken returns the token of an "Authorization: Bearer" header, "" without one.
func bearerToken(r *http.Request) string {
	scheme, token, found := strings.Cut(r.Header.Get("Authorization"), " ")
	if !found || !strings.EqualFold(scheme, "bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// authenticate returns the user of token in the location cluster; nil when the token is
// not valid there.
func (rv *reviewer) authenticate(ctx context.Context, locationCluster, token string) (*authenticationv1.UserInfo, error) {
	sum := sha256.Sum256([]byte(token))
	key := locationCluster + "/" + hex.EncodeToString(sum[:])
	if u, ok := rv.users.Get(key); ok {
		return u.(*authenticationv1.UserInfo), nil
	}
	review := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}
	review.APIVersion, review.Kind = "authentication.k8s.io/v1", "TokenReview"
	if err := rv.post(ctx, locationCluster, "/apis/authentication.k8s.io/v1/tokenreviews", review); err != nil {
		return nil, fmt.Errorf("failed to review the token: %w", err)
	}
	if !review.Status.Authenticated {
		return nil, nil
	}
	rv.users.Add(key, &review.Status.User, rv.ttl)
	return &review.Status.User, nil
}

// authorize reports whether user may sync the SyncTarget name in the location cluster.
func (rv *reviewer) authorize(ctx context.Context, locationCluster, name string, user *authenticationv1.UserInfo) (bool, string, error) {
	return rv.authorizeAttributes(ctx, locationCluster, user, authorizationv1.ResourceAttributes{
		Verb: SyncVerb, Group: workloadv1alpha1.SchemeGroupVersion.Group, Resource: "synctargets", Name: name,
	})
}

// authorizeAttributes reports whether user may do attrs in cluster; a denial comes with
// the authoriser's reason.
func (rv *reviewer) authorizeAttributes(ctx context.Context, cluster string, user *authenticationv1.UserInfo, attrs authorizationv1.ResourceAttributes) (bool, string, error) {
	key, err := grantKey(cluster, attrs, user)
	if err != nil {
		return false, "", err
	}
	if _, ok := rv.grants.Get(key); ok {
		return true, "", nil
	}
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range user.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user.Username, Groups: user.Groups, UID: user.UID, Extra: extra, ResourceAttributes: &attrs,
	}}
	review.APIVersion, review.Kind = "authorization.k8s.io/v1", "SubjectAccessReview"
	if err := rv.post(ctx, cluster, "/apis/authorization.k8s.io/v1/subjectaccessreviews", review); err != nil {
		return false, "", fmt.Errorf("failed to review access: %w", err)
	}
	if !review.Status.Allowed {
		return false, review.Status.Reason, nil
	}
	rv.grants.Add(key, true, rv.ttl)
	return true, "", nil
}

// grantKey identifies one user's access to attrs in one cluster: every field of the user,
// as the SubjectAccessReview sees it.
func grantKey(cluster string, attrs authorizationv1.ResourceAttributes, user *authenticationv1.UserInfo) (string, error) {
	groups := append([]string(nil), user.Groups...)
	sort.Strings(groups)
	b, err := json.Marshal([]any{cluster, attrs, user.Username, user.UID, groups, user.Extra})
	if err != nil {
		return "", fmt.Errorf("failed to build the authorisation cache key: %w", err)
	}
	return string(b), nil
}

// post creates a review in the location cluster and decodes the answer into it.
func (rv *reviewer) post(ctx context.Context, locationCluster, apiPath string, review any) error {
	body, err := json.Marshal(review)
	if err != nil {
		return fmt.Errorf("failed to encode the review: %w", err)
	}
	_, respBody, err := rv.client.do(ctx, http.MethodPost, locationCluster, apiPath, nil, "application/json", body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(respBody, review); err != nil {
		return fmt.Errorf("failed to decode the review: %w", err)
	}
	return nil
}
