package sync

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcfake "github.com/tmc-dev/tmc/sdk/client/clientset/versioned/fake"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// tokenExpiry is the expiration the fake TokenRequest API returns.
var tokenExpiry = time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)

// checkGolden compares got with testdata/<name>, or rewrites the file with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("failed to read golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run go test -update to accept):\n%s", path, lineDiff(string(want), string(got)))
	}
}

// lineDiff returns the first differing lines, enough to see what changed.
func lineDiff(want, got string) string {
	wl, gl := bytes.Split([]byte(want), []byte("\n")), bytes.Split([]byte(got), []byte("\n"))
	var out bytes.Buffer
	shown := 0
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g []byte
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if !bytes.Equal(w, g) {
			fmt.Fprintf(&out, "line %d:\n  want: %s\n  got:  %s\n", i+1, w, g)
			if shown++; shown == 10 {
				break
			}
		}
	}
	return out.String()
}

// fakeUpstream is a location workspace made of fake clients: SyncTargets get a UID on
// create, ServiceAccounts optionally kcp's cluster annotation, and the TokenRequest API
// returns "token-1", "token-2", ...
type fakeUpstream struct {
	kube     *kubefake.Clientset
	tmc      *tmcfake.Clientset
	tokens   int
	requests []*authenticationv1.TokenRequest
}

func newFakeUpstream(t *testing.T, kcpCluster string, objs ...runtime.Object) *fakeUpstream {
	t.Helper()
	var kubeObjs, tmcObjs []runtime.Object
	kubeObjs = append(kubeObjs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
	for _, o := range objs {
		if _, ok := o.(*workloadv1alpha1.SyncTarget); ok {
			tmcObjs = append(tmcObjs, o)
		} else {
			kubeObjs = append(kubeObjs, o)
		}
	}
	f := &fakeUpstream{kube: kubefake.NewClientset(kubeObjs...), tmc: tmcfake.NewSimpleClientset(tmcObjs...)}
	uids := 0
	f.tmc.PrependReactor("create", "synctargets", func(action clienttesting.Action) (bool, runtime.Object, error) {
		st := action.(clienttesting.CreateAction).GetObject().(*workloadv1alpha1.SyncTarget)
		uids++
		st.UID = types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", uids))
		if kcpCluster != "" {
			// kcp records the logical cluster on every object it stores.
			st.Annotations = map[string]string{logicalcluster.AnnotationKey: kcpCluster}
		}
		return false, nil, nil // let the tracker store it
	})
	f.kube.PrependReactor("create", "serviceaccounts", func(action clienttesting.Action) (bool, runtime.Object, error) {
		if action.GetSubresource() == "token" {
			req := action.(clienttesting.CreateAction).GetObject().(*authenticationv1.TokenRequest)
			f.requests = append(f.requests, req.DeepCopy())
			f.tokens++
			resp := req.DeepCopy()
			resp.Status = authenticationv1.TokenRequestStatus{
				Token:               fmt.Sprintf("token-%d", f.tokens),
				ExpirationTimestamp: metav1.NewTime(tokenExpiry),
			}
			return true, resp, nil
		}
		if sa, ok := action.(clienttesting.CreateAction).GetObject().(*corev1.ServiceAccount); ok && kcpCluster != "" {
			sa.Annotations = map[string]string{logicalcluster.AnnotationKey: kcpCluster}
		}
		return false, nil, nil
	})
	return f
}
