package v1alpha1

import "testing"

func TestParseConflictPolicy(t *testing.T) {
	tests := []struct {
		value  string
		want   ConflictPolicy
		wantOK bool
	}{
		{"Abort", ConflictPolicyAbort, true},
		{"AdoptIfEqual", ConflictPolicyAdoptIfEqual, true},
		{"adoptifequal", ConflictPolicyAdoptIfEqual, true},
		{"Overwrite", ConflictPolicyOverwrite, true},
		{"", "", false},
		{"Adopt", "", false},
		{"Overwrite ", "", false},
	}
	for _, tc := range tests {
		got, ok := ParseConflictPolicy(tc.value)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("ParseConflictPolicy(%q) = %q, %v; want %q, %v", tc.value, got, ok, tc.want, tc.wantOK)
		}
	}
}
