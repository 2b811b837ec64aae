package localenv

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// httpClient serves the plain-HTTP endpoints of the TMC binaries (/metrics, /readyz, ...).
var httpClient = &http.Client{Timeout: 10 * time.Second}

// HTTPGet fetches url and returns the status code and the body.
func HTTPGet(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", fmt.Errorf("failed to create request for %s: %w", url, err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("failed to get %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, "", fmt.Errorf("failed to read %s: %w", url, err)
	}
	return resp.StatusCode, string(b), nil
}
