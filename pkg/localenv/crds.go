package localenv

import (
	"context"
	"errors"
	"fmt"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/tmc-dev/tmc/config/crds"
)

// InstallCRDs creates or updates the project's CRDs (config/crds) through cfg and waits until
// they are established and served.
func InstallCRDs(ctx context.Context, cfg *rest.Config) error {
	list, err := crds.CRDs()
	if err != nil {
		return err
	}
	return InstallCRDObjects(ctx, cfg, list...)
}

// InstallCRDObjects creates or updates the given CRDs and waits until they are established
// and discovery serves them.
func InstallCRDObjects(ctx context.Context, cfg *rest.Config, list ...*apiextensionsv1.CustomResourceDefinition) error {
	client, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("failed to create apiextensions client: %w", err)
	}
	for _, crd := range list {
		existing, err := client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			if _, err := client.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd.DeepCopy(), metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("failed to create CRD %s: %w", crd.Name, err)
			}
		case err != nil:
			return fmt.Errorf("failed to get CRD %s: %w", crd.Name, err)
		default:
			updated := crd.DeepCopy()
			updated.ResourceVersion = existing.ResourceVersion
			if _, err := client.ApiextensionsV1().CustomResourceDefinitions().Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("failed to update CRD %s: %w", crd.Name, err)
			}
		}
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return fmt.Errorf("failed to create discovery client: %w", err)
	}
	for _, crd := range list {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			got, err := client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			established := false
			for _, c := range got.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					established = true
				}
			}
			if !established {
				return false, nil
			}
			for _, v := range crd.Spec.Versions {
				if !v.Served {
					continue
				}
				rl, err := dc.ServerResourcesForGroupVersion(crd.Spec.Group + "/" + v.Name)
				if err != nil {
					return false, nil
				}
				found := false
				for _, r := range rl.APIResources {
					if r.Name == crd.Spec.Names.Plural {
						found = true
					}
				}
				if !found {
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			return fmt.Errorf("CRD %s was not established and served in time: %w", crd.Name, err)
		}
		if err := waitAdmitted(ctx, cfg, crd); err != nil {
			return err
		}
	}
	return nil
}

// waitAdmitted waits until the apiserver's admission handles objects of crd: a workspace's
// logical-cluster policy (a mutating admission policy) learns a new type's schema a moment
// after the CRD is served, and until then refuses its objects with 503 "Resource kind ...
// not found". A server-side dry-run create of an empty object probes it; any other answer
// (validation errors included: they come after admission) means admission is ready.
func waitAdmitted(ctx context.Context, cfg *rest.Config, crd *apiextensionsv1.CustomResourceDefinition) error {
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("failed to create dynamic client: %w", err)
	}
	for _, v := range crd.Spec.Versions {
		if !v.Served {
			continue
		}
		gvr := schema.GroupVersionResource{Group: crd.Spec.Group, Version: v.Name, Resource: crd.Spec.Names.Plural}
		probe := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": crd.Spec.Group + "/" + v.Name, "kind": crd.Spec.Names.Kind,
			"metadata": map[string]any{"name": "tmc-admission-probe"},
		}}
		resource := client.Resource(gvr)
		var create dynamic.ResourceInterface = resource
		if crd.Spec.Scope == apiextensionsv1.NamespaceScoped {
			create = resource.Namespace(metav1.NamespaceDefault)
		}
		var last error
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			_, last = create.Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			return !apierrors.IsServiceUnavailable(last), nil
		})
		if err != nil {
			return fmt.Errorf("admission did not accept objects of CRD %s (%s) in time: %w", crd.Name, v.Name, errors.Join(err, last))
		}
	}
	return nil
}
