package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const crdGroup = "example.tmc.dev"

var (
	widgets = schema.GroupVersionResource{Group: crdGroup, Version: "v1", Resource: "widgets"}
	gadgets = schema.GroupVersionResource{Group: crdGroup, Version: "v1", Resource: "gadgets"}
)

// customResourceDefinition is a namespaced CRD of group crdGroup with a status subresource
// and free-form spec and status.
func customResourceDefinition(kind, plural string) *apiextensionsv1.CustomResourceDefinition {
	free := apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr.To(true)}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + "." + crdGroup},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: crdGroup,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: kind, ListKind: kind + "List", Plural: plural, Singular: strings.ToLower(kind)},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type:       "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{"spec": free, "status": free},
				}},
			}},
		},
	}
}

func customObject(gvr schema.GroupVersionResource, kind, name string, labels map[string]string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion(gvr.GroupVersion().String())
	u.SetKind(kind)
	u.SetName(name)
	u.SetLabels(labels)
	return u
}

func dynamicClient(t *testing.T, cfg *rest.Config) dynamic.Interface {
	t.Helper()
	c, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSyncerCustomResources: a CRD served on both sides and listed in spec.resources is
// synced like a built-in type (spec down, the status a downstream controller writes back
// up), with the RBAC `workload sync --resources` generates for it; a CRD served only
// upstream, added to spec.resources, is reported Incompatible and nothing is deleted or
// written anywhere, and the syncer stays Ready (SyncerReady, /readyz).
func TestSyncerCustomResources(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	widgetType := workloadv1alpha1.ResourceToSync{Group: crdGroup, Resource: "widgets"}
	gadgetType := workloadv1alpha1.ResourceToSync{Group: crdGroup, Resource: "gadgets"}
	registered := append(workloadv1alpha1.DefaultResources(), widgetType, gadgetType)
	se := setupSyncerEnvFor(t, registered)
	widgetCRD, gadgetCRD := customResourceDefinition("Widget", "widgets"), customResourceDefinition("Gadget", "gadgets")
	for _, ws := range []string{wsA, wsB} {
		if err := localenv.InstallCRDObjects(ctx, se.env.Workspace(ws).AdminConfig(), widgetCRD, gadgetCRD); err != nil {
			t.Fatal(err)
		}
	}
	if err := localenv.InstallCRDObjects(ctx, se.cluster.AdminConfig(), widgetCRD); err != nil {
		t.Fatal(err)
	}
	// The registration's RBAC covers the custom types on both sides (syncerrbac's rules per
	// group): the syncer's user may write widgets and their status upstream, and widgets
	// downstream (where it only reads the status).
	for _, check := range []struct {
		side        string
		cfg         *rest.Config
		subresource string
	}{
		{"upstream " + wsA, se.env.Workspace(wsA).AdminConfig(), ""},
		{"upstream " + wsA, se.env.Workspace(wsA).AdminConfig(), "status"},
		{"downstream", se.cluster.AdminConfig(), ""},
	} {
		if !allowed(t, check.cfg, syncerUser, "update", widgets, check.subresource) {
			t.Errorf("%s: %s may not update widgets %s", check.side, syncerUser, check.subresource)
		}
	}
	se.setResources(t, append(workloadv1alpha1.DefaultResources(), widgetType))
	sp := se.startSyncer(t, syncerOptions{args: []string{"--discovery-interval=3s"}})
	tc := tmcClient(t, se.env.Workspace(locationWS).AdminConfig())
	eventually(t, 60*time.Second, "widgets.example.tmc.dev to be Accepted", func(ctx context.Context) (bool, error) {
		st, err := tc.WorkloadV1alpha1().SyncTargets().Get(ctx, clusterName, metav1.GetOptions{})
		return err == nil && syncedState(st, widgetType) == workloadv1alpha1.ResourceStateAccepted, nil
	})

	// Spec down.
	const ns = "factory"
	se.createPlacedNamespace(t, wsA, ns)
	upstream := dynamicClient(t, se.env.Workspace(wsA).AdminConfig())
	down := dynamicClient(t, se.cluster.AdminConfig())
	dns := se.downstreamNamespace(t, wsA, ns)
	if _, err := upstream.Resource(widgets).Namespace(ns).Create(ctx, customObject(widgets, "Widget", "w1", se.syncLabels(), map[string]any{"size": int64(3)}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := upstream.Resource(gadgets).Namespace(ns).Create(ctx, customObject(gadgets, "Gadget", "g1", se.syncLabels(), map[string]any{"color": "red"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var downstreamWidget *unstructured.Unstructured
	eventually(t, 60*time.Second, "Widget w1 to be synced down with its spec", func(ctx context.Context) (bool, error) {
		u, err := down.Resource(widgets).Namespace(dns).Get(ctx, "w1", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		size, _, _ := unstructured.NestedInt64(u.Object, "spec", "size")
		downstreamWidget = u
		return size == 3 && u.GetLabels()[workloadv1alpha1.InternalDownstreamClusterLabel] == se.stKey, nil
	})

	// Status up: written downstream as the type's controller would, through the status
	// subresource.
	if err := unstructured.SetNestedField(downstreamWidget.Object, "Assembled", "status", "phase"); err != nil {
		t.Fatal(err)
	}
	if _, err := down.Resource(widgets).Namespace(dns).UpdateStatus(ctx, downstreamWidget, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the downstream status of Widget w1 to reach upstream", func(ctx context.Context) (bool, error) {
		u, err := upstream.Resource(widgets).Namespace(ns).Get(ctx, "w1", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
		return phase == "Assembled", nil
	})

	// A type served only upstream joins spec.resources: Incompatible, nothing touched.
	versionsBefore := customResourceVersions(t, down, widgets, dns)
	upstreamBefore := customResourceVersions(t, upstream, widgets, ns)
	maps.Copy(upstreamBefore, prefixed("gadget/", customResourceVersions(t, upstream, gadgets, ns)))
	se.setResources(t, append(workloadv1alpha1.DefaultResources(), widgetType, gadgetType))
	eventually(t, 60*time.Second, "gadgets.example.tmc.dev to be reported Incompatible", func(ctx context.Context) (bool, error) {
		st, err := tc.WorkloadV1alpha1().SyncTargets().Get(ctx, clusterName, metav1.GetOptions{})
		return err == nil && syncedState(st, gadgetType) == workloadv1alpha1.ResourceStateIncompatible, nil
	})
	holdFor(t, 10*time.Second, "nothing to change with an Incompatible type in spec.resources", func(ctx context.Context) error {
		if got := customResourceVersions(t, down, widgets, dns); !maps.Equal(got, versionsBefore) {
			return fmt.Errorf("downstream Widgets changed: %v, were %v", got, versionsBefore)
		}
		got := customResourceVersions(t, upstream, widgets, ns)
		maps.Copy(got, prefixed("gadget/", customResourceVersions(t, upstream, gadgets, ns)))
		if !maps.Equal(got, upstreamBefore) {
			return fmt.Errorf("upstream Widgets and Gadgets changed: %v, were %v", got, upstreamBefore)
		}
		st, err := tc.WorkloadV1alpha1().SyncTargets().Get(ctx, clusterName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(st.Status.Conditions, workloadv1alpha1.SyncTargetSyncerReady) {
			return fmt.Errorf("SyncTarget not SyncerReady: %+v", meta.FindStatusCondition(st.Status.Conditions, workloadv1alpha1.SyncTargetSyncerReady))
		}
		if syncedState(st, widgetType) != workloadv1alpha1.ResourceStateAccepted {
			return fmt.Errorf("widgets turned %s", syncedState(st, widgetType))
		}
		if code, body := httpGet(ctx, sp.HealthURL+"/readyz"); code != http.StatusOK {
			return fmt.Errorf("/readyz answered %d: %s", code, body)
		}
		return nil
	})
	st, err := tc.WorkloadV1alpha1().SyncTargets().Get(ctx, clusterName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range st.Status.SyncedResources {
		if r.ResourceToSync == gadgetType {
			t.Logf("gadgets: %s: %s", r.State, r.Message)
		}
	}
}

// allowed asks the apiserver of cfg whether user may do verb on gvr (and subresource).
func allowed(t *testing.T, cfg *rest.Config, user, verb string, gvr schema.GroupVersionResource, subresource string) bool {
	t.Helper()
	review, err := kubeClient(t, cfg).AuthorizationV1().SubjectAccessReviews().Create(t.Context(), &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: verb, Group: gvr.Group, Resource: gvr.Resource, Subresource: subresource, Namespace: "any",
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return review.Status.Allowed
}

// syncedState returns the state status.syncedResources reports for r, "" if none.
func syncedState(st *workloadv1alpha1.SyncTarget, r workloadv1alpha1.ResourceToSync) workloadv1alpha1.ResourceState {
	i := slices.IndexFunc(st.Status.SyncedResources, func(s workloadv1alpha1.SyncedResource) bool { return s.ResourceToSync == r })
	if i < 0 {
		return ""
	}
	return st.Status.SyncedResources[i].State
}

// customResourceVersions returns the resourceVersion of every object of gvr in ns, by name.
func customResourceVersions(t *testing.T, c dynamic.Interface, gvr schema.GroupVersionResource, ns string) map[string]string {
	t.Helper()
	list, err := c.Resource(gvr).Namespace(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, u := range list.Items {
		out[u.GetName()] = u.GetResourceVersion()
	}
	return out
}

func prefixed(prefix string, m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[prefix+k] = v
	}
	return out
}
