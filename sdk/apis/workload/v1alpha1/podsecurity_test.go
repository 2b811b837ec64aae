package v1alpha1

import "testing"

func TestPodSecurityLevels(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		podSecurity          *PodSecurity
		enforce, warn, audit PodSecurityLevel
	}{
		{name: "unset: defaults", enforce: PodSecurityLevelBaseline, warn: PodSecurityLevelRestricted, audit: PodSecurityLevelRestricted},
		{name: "empty: defaults", podSecurity: &PodSecurity{}, enforce: PodSecurityLevelBaseline, warn: PodSecurityLevelRestricted, audit: PodSecurityLevelRestricted},
		{name: "enforce only", podSecurity: &PodSecurity{Enforce: PodSecurityLevelRestricted},
			enforce: PodSecurityLevelRestricted, warn: PodSecurityLevelRestricted, audit: PodSecurityLevelRestricted},
		{name: "all set", podSecurity: &PodSecurity{Enforce: PodSecurityLevelPrivileged, Warn: PodSecurityLevelBaseline, Audit: PodSecurityLevelPrivileged},
			enforce: PodSecurityLevelPrivileged, warn: PodSecurityLevelBaseline, audit: PodSecurityLevelPrivileged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enforce, warn, audit := tc.podSecurity.Levels()
			if enforce != tc.enforce || warn != tc.warn || audit != tc.audit {
				t.Errorf("Levels() = %s, %s, %s; want %s, %s, %s", enforce, warn, audit, tc.enforce, tc.warn, tc.audit)
			}
		})
	}
}
