package tmc

import (
	"testing"
	"time"
)

func TestBackoffConfigDelay(t *testing.T) {
	exact := BackoffConfig{BaseDelay: 100 * time.Millisecond, Factor: 2, MaxDelay: time.Second}
	jittered := BackoffConfig{BaseDelay: 100 * time.Millisecond, Factor: 2, MaxDelay: time.Second, Jitter: 0.5}
	constant := BackoffConfig{BaseDelay: time.Second, Factor: 0.5, MaxDelay: time.Minute}
	tests := []struct {
		name    string
		config  BackoffConfig
		attempt int
		r       float64
		want    time.Duration
	}{
		{"first", exact, 0, 0.7, 100 * time.Millisecond},
		{"second", exact, 1, 0.7, 200 * time.Millisecond},
		{"fourth", exact, 3, 0.7, 800 * time.Millisecond},
		{"capped", exact, 4, 0.7, time.Second},
		{"overflow capped", exact, 5000, 0.7, time.Second},
		{"negative attempt", exact, -3, 0.7, 100 * time.Millisecond},
		{"jitter r=0", jittered, 2, 0, 400 * time.Millisecond},
		{"jitter r=0.5", jittered, 2, 0.5, 300 * time.Millisecond},
		{"jitter at cap", jittered, 10, 0.5, 750 * time.Millisecond},
		{"jitter r clamped", jittered, 0, 7, 50 * time.Millisecond},
		{"factor below 1", constant, 6, 0, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.config.Delay(tc.attempt, tc.r); got != tc.want {
				t.Errorf("Delay(%d, %v) = %v, want %v", tc.attempt, tc.r, got, tc.want)
			}
		})
	}
}

func TestBackoffConfigDefaults(t *testing.T) {
	if got := (BackoffConfig{}).withDefaults(DefaultBackoff); got != DefaultBackoff {
		t.Errorf("zero config = %+v, want DefaultBackoff", got)
	}
	got := BackoffConfig{BaseDelay: time.Minute}.withDefaults(DefaultBackoff)
	want := BackoffConfig{BaseDelay: time.Minute, Factor: 2, MaxDelay: time.Minute, Jitter: 0}
	if got != want {
		t.Errorf("partial config = %+v, want %+v", got, want)
	}
	got = BackoffConfig{Factor: 3, Jitter: 4}.withDefaults(DefaultBackoff)
	want = BackoffConfig{BaseDelay: DefaultBackoff.BaseDelay, Factor: 3, MaxDelay: DefaultBackoff.MaxDelay, Jitter: 1}
	if got != want {
		t.Errorf("partial config = %+v, want %+v", got, want)
	}
}
