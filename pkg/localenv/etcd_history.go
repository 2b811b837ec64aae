package localenv

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// etcdGatewayClient talks to etcd's v3 JSON gateway (served on the client URL).
var etcdGatewayClient = &http.Client{Timeout: 30 * time.Second}

// revisionProbeKey is the key the revision probe ranges over; it need not exist, the
// answer's header carries the store's revision either way.
const revisionProbeKey = "/tmc-localenv/revision-probe"

// Revision returns etcd's current revision: the resourceVersion of the newest write of any
// apiserver of the environment (they share one etcd).
func (e *Etcd) Revision(ctx context.Context) (int64, error) {
	var resp struct {
		Header struct {
			Revision gatewayInt64 `json:"revision"`
		} `json:"header"`
	}
	req := map[string]any{"key": base64.StdEncoding.EncodeToString([]byte(revisionProbeKey)), "count_only": true}
	if err := e.gateway(ctx, "/v3/kv/range", req, &resp); err != nil {
		return 0, fmt.Errorf("failed to read the etcd revision: %w", err)
	}
	if resp.Header.Revision <= 0 {
		return 0, fmt.Errorf("failed to read the etcd revision: the answer carries revision %d", resp.Header.Revision)
	}
	return int64(resp.Header.Revision), nil
}

// Compact discards etcd's history before rev and returns once it is physically gone. A
// watch (or an exact-resourceVersion list) of any apiserver from an older resourceVersion
// then fails with 410 Gone (Expired) when it is served from etcd, i.e. by an apiserver
// without a watch cache for that resource. Apiservers compact the same way on their own
// every --etcd-compaction-interval (5 m by default); this does it now.
func (e *Etcd) Compact(ctx context.Context, rev int64) error {
	req := map[string]any{"revision": strconv.FormatInt(rev, 10), "physical": true}
	if err := e.gateway(ctx, "/v3/kv/compaction", req, nil); err != nil {
		return fmt.Errorf("failed to compact etcd at revision %d: %w", rev, err)
	}
	return nil
}

// CompactToCurrent compacts etcd's whole history up to its current revision and returns
// that revision.
func (e *Etcd) CompactToCurrent(ctx context.Context) (int64, error) {
	rev, err := e.Revision(ctx)
	if err != nil {
		return 0, err
	}
	return rev, e.Compact(ctx, rev)
}

// gateway posts req as JSON to path on etcd's gateway and decodes the answer into resp
// (when not nil).
func (e *Etcd) gateway(ctx context.Context, path string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("failed to encode the request to %s: %w", path, err)
	}
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(e.ClientURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("failed to create the request to %s: %w", path, err)
	}
	httpReq.Header.Set("Content-Type", "application/json")
	httpResp, err := etcdGatewayClient.Do(httpReq)
	if err != nil {
		return fmt.Errorf("failed to post to %s: %w", path, err)
	}
	defer func() { _ = httpResp.Body.Close() }()
	b, err := io.ReadAll(httpResp.Body)
	if err != nil {
		return fmt.Errorf("failed to read the answer of %s: %w", path, err)
	}
	if httpResp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s: %s", path, httpResp.Status, strings.TrimSpace(string(b)))
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(b, resp); err != nil {
		return fmt.Errorf("failed to decode the answer of %s (%q): %w", path, b, err)
	}
	return nil
}

// gatewayInt64 is an int64 as etcd's JSON gateway writes it: a string (proto3 JSON), or a
// plain number.
type gatewayInt64 int64

func (v *gatewayInt64) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*v = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("invalid int64 %s: %w", b, err)
	}
	*v = gatewayInt64(n)
	return nil
}
