package localenv

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// errEtcdCompacted is the error of an etcd watch from a revision etcd has compacted.
var errEtcdCompacted = errors.New("the requested revision has been compacted")

// etcdKeyEvent is one change in etcd: the key and the revision of the change.
type etcdKeyEvent struct {
	Key      string
	Revision int64
}

// etcdWatchStream is a running etcd watch; Events is closed when it ends, then Err says why.
type etcdWatchStream struct {
	Events <-chan etcdKeyEvent
	err    error
	done   chan struct{}
}

// Err returns why the stream ended, once Events is closed.
func (s *etcdWatchStream) Err() error {
	<-s.done
	return s.err
}

// watchEtcdPrefix watches every key under prefix from revision startRev on, through etcd's
// JSON gateway (POST /v3/watch, one JSON object per line). etcd delivers the changes in
// revision order; the values come along (a watch cannot be keys-only) and are dropped. It
// returns once etcd has created the watch, or failed to.
func (e *Etcd) watchEtcdPrefix(ctx context.Context, prefix string, startRev int64) (*etcdWatchStream, error) {
	body, err := json.Marshal(map[string]any{"create_request": map[string]any{
		"key":            base64.StdEncoding.EncodeToString([]byte(prefix)),
		"range_end":      base64.StdEncoding.EncodeToString(prefixEnd(prefix)),
		"start_revision": strconv.FormatInt(startRev, 10),
	}})
	if err != nil {
		return nil, fmt.Errorf("failed to encode the etcd watch request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(e.ClientURL, "/")+"/v3/watch", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("failed to create the etcd watch request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	// Not etcdGatewayClient: its timeout would cut the stream.
	resp, err := http.DefaultTransport.RoundTrip(req) //nolint:bodyclose // closed on every error path below, else by the reader goroutine
	if err != nil {
		return nil, fmt.Errorf("failed to watch etcd: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return nil, fmt.Errorf("failed to watch etcd: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	dec := json.NewDecoder(resp.Body)
	first, err := decodeEtcdWatchResponse(dec)
	if err == nil && !first.Created {
		err = fmt.Errorf("the first answer %+v does not confirm the watch", first)
	}
	if err != nil {
		_ = resp.Body.Close()
		return nil, err
	}
	events := make(chan etcdKeyEvent, 256)
	s := &etcdWatchStream{Events: events, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(events)
		defer func() { _ = resp.Body.Close() }()
		s.err = readEtcdWatch(ctx, dec, first, events)
	}()
	return s, nil
}

// etcdWatchResponse is one answer of etcd's watch stream.
type etcdWatchResponse struct {
	Created         bool         `json:"created"`
	Canceled        bool         `json:"canceled"`
	CompactRevision gatewayInt64 `json:"compact_revision"`
	CancelReason    string       `json:"cancel_reason"`
	Events          []struct {
		KV struct {
			Key         []byte       `json:"key"`
			ModRevision gatewayInt64 `json:"mod_revision"`
		} `json:"kv"`
	} `json:"events"`
}

func decodeEtcdWatchResponse(dec *json.Decoder) (etcdWatchResponse, error) {
	var line struct {
		Result *etcdWatchResponse `json:"result"`
		Error  *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := dec.Decode(&line); err != nil {
		return etcdWatchResponse{}, fmt.Errorf("failed to read the etcd watch: %w", err)
	}
	if line.Error != nil {
		return etcdWatchResponse{}, fmt.Errorf("the etcd watch failed: %s", line.Error.Message)
	}
	if line.Result == nil {
		return etcdWatchResponse{}, errors.New("the etcd watch sent an empty answer")
	}
	r := *line.Result
	if r.CompactRevision > 0 {
		return r, fmt.Errorf("%w (compacted at %d)", errEtcdCompacted, r.CompactRevision)
	}
	if r.Canceled {
		return r, fmt.Errorf("etcd canceled the watch: %s", r.CancelReason)
	}
	return r, nil
}

func readEtcdWatch(ctx context.Context, dec *json.Decoder, first etcdWatchResponse, events chan<- etcdKeyEvent) error {
	r := first
	for {
		for _, ev := range r.Events {
			select {
			case events <- etcdKeyEvent{Key: string(ev.KV.Key), Revision: int64(ev.KV.ModRevision)}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		var err error
		if r, err = decodeEtcdWatchResponse(dec); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
	}
}

// prefixEnd returns the range end that makes an etcd range cover every key under prefix.
func prefixEnd(prefix string) []byte {
	end := []byte(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}
