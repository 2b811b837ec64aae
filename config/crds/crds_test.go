package crds

import (
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestCRDsAreStructuralWithStatusAndColumns(t *testing.T) {
	crds, err := CRDs()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"synctargets.workload.kcp.io":  {"Ready", "Heartbeat", "Resources"},
		"locations.scheduling.kcp.io":  {"Resource", "Available", "Instances"},
		"placements.scheduling.kcp.io": {"Phase", "Location", "SyncTarget"},
	}
	if len(crds) != len(want) {
		t.Fatalf("got %d CRDs, want %d", len(crds), len(want))
	}
	for _, crd := range crds {
		cols, ok := want[crd.Name]
		if !ok {
			t.Errorf("unexpected CRD %s", crd.Name)
			continue
		}
		if crd.Spec.Scope != apiextensionsv1.ClusterScoped {
			t.Errorf("%s: scope %s, want Cluster", crd.Name, crd.Spec.Scope)
		}
		for _, v := range crd.Spec.Versions {
			if v.Subresources == nil || v.Subresources.Status == nil {
				t.Errorf("%s/%s: no status subresource", crd.Name, v.Name)
			}
			have := map[string]bool{}
			for _, c := range v.AdditionalPrinterColumns {
				have[c.Name] = true
			}
			for _, c := range cols {
				if !have[c] {
					t.Errorf("%s/%s: printer column %q missing", crd.Name, v.Name, c)
				}
			}
			internal := &apiextensions.JSONSchemaProps{}
			if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, internal, nil); err != nil {
				t.Fatalf("%s: %v", crd.Name, err)
			}
			s, err := structuralschema.NewStructural(internal)
			if err != nil {
				t.Fatalf("%s/%s: not structural: %v", crd.Name, v.Name, err)
			}
			if errs := structuralschema.ValidateStructural(field.NewPath("schema"), s); len(errs) > 0 {
				t.Errorf("%s/%s: structural validation failed: %v", crd.Name, v.Name, errs.ToAggregate())
			}
		}
	}
}
