package cliutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"k8s.io/klog/v2/ktesting"
)

// freeAddress returns a loopback address with a port free a moment ago.
func freeAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("failed to find a free port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func textHandler(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, body) })
}

func get(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), nil
}

func testContext(t *testing.T) context.Context {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRunComponentServesBeforePrepare(t *testing.T) {
	ctx := testContext(t)
	metricsAddr, healthAddr := freeAddress(t), freeAddress(t)
	var prepared, ran bool
	err := RunComponent(ctx, Component{
		Name:               "test",
		MetricsBindAddress: metricsAddr,
		Metrics:            textHandler("metrics"),
		HealthBindAddress:  healthAddr,
		Health:             textHandler("ok"),
		Prepare: func(ctx context.Context) error {
			for url, want := range map[string]string{
				"http://" + metricsAddr + "/metrics": "metrics",
				"http://" + healthAddr + "/readyz":   "ok",
			} {
				got, err := get(ctx, url)
				if err != nil {
					return err
				}
				if got != want {
					return fmt.Errorf("GET %s = %q, want %q", url, got, want)
				}
			}
			prepared = true
			return nil
		},
		Run: func(context.Context) error {
			ran = prepared
			return nil
		},
	})
	if err != nil {
		t.Fatalf("RunComponent: %v", err)
	}
	if !prepared || !ran {
		t.Errorf("prepared %v, ran after Prepare %v; want both", prepared, ran)
	}
	if _, err := get(ctx, "http://"+metricsAddr+"/metrics"); err == nil {
		t.Errorf("metrics still served after RunComponent returned")
	}
}

func TestRunComponentDisabledServers(t *testing.T) {
	ctx := testContext(t)
	err := RunComponent(ctx, Component{
		Name:               "test",
		MetricsBindAddress: "0", Metrics: textHandler("metrics"),
		HealthBindAddress: "", Health: textHandler("ok"),
		Run: func(context.Context) error { return nil },
	})
	if err != nil {
		t.Fatalf("RunComponent: %v", err)
	}
}

func TestRunComponentListenError(t *testing.T) {
	ctx := testContext(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	err = RunComponent(ctx, Component{
		Name:              "test",
		HealthBindAddress: l.Addr().String(), Health: textHandler("ok"),
		Run: func(context.Context) error {
			t.Error("Run called although the health server could not listen")
			return nil
		},
	})
	if err == nil {
		t.Fatal("no error for an address in use")
	}
}

func TestRunComponentWithoutElection(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		prepare func(ctx context.Context) error
		run     func(ctx context.Context) error
		// cancel ends the context once Run (or Prepare) started.
		cancel  bool
		wantErr error
		wantRun bool
	}{
		{name: "Run returns", run: func(context.Context) error { return nil }, wantRun: true},
		{name: "Run fails", run: func(context.Context) error { return fmt.Errorf("failed to run: %w", boom) }, wantErr: boom, wantRun: true},
		{name: "Prepare fails", prepare: func(context.Context) error { return boom }, wantErr: boom},
		{
			name:    "ctx ends during Prepare",
			prepare: func(ctx context.Context) error { <-ctx.Done(); return fmt.Errorf("failed to wait: %w", ctx.Err()) },
			cancel:  true,
		},
		{
			name:    "ctx ends during Run",
			run:     func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
			cancel:  true,
			wantRun: true,
		},
		{
			name:    "Run fails for its own reason after ctx ended",
			run:     func(ctx context.Context) error { <-ctx.Done(); return boom },
			cancel:  true,
			wantErr: boom,
			wantRun: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(testContext(t))
			defer cancel()
			started := make(chan struct{}, 2)
			ran := false
			c := Component{Name: "test", Run: func(ctx context.Context) error {
				ran = true
				started <- struct{}{}
				if tt.run == nil {
					return nil
				}
				return tt.run(ctx)
			}}
			if tt.prepare != nil {
				c.Prepare = func(ctx context.Context) error { started <- struct{}{}; return tt.prepare(ctx) }
			}
			if tt.cancel {
				go func() { <-started; cancel() }()
			}
			err := RunComponent(ctx, c)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("RunComponent = %v, want %v", err, tt.wantErr)
			}
			if ran != tt.wantRun {
				t.Errorf("Run called: %v, want %v", ran, tt.wantRun)
			}
		})
	}
}

func TestRunComponentRequiresRun(t *testing.T) {
	if err := RunComponent(testContext(t), Component{Name: "test"}); err == nil {
		t.Error("no error without a Run function")
	}
}
