package localenv

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestCreateObjectsIsIdempotent: granting twice is harmless and binds the user.
func TestCreateObjectsIsIdempotent(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientset()
	for range 2 {
		if err := CreateObjects(ctx, c, ControllerRBAC("tmc-controller")...); err != nil {
			t.Fatal(err)
		}
	}
	crb, err := c.RbacV1().ClusterRoleBindings().Get(ctx, "tmc-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if crb.RoleRef.Name != "tmc-controller" || len(crb.Subjects) != 1 || crb.Subjects[0].Name != "tmc-controller" {
		t.Errorf("binding %+v", crb)
	}
}
