package tmc

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
)

func TestNewEventRecorderRecordsUntilStopped(t *testing.T) {
	kube := fake.NewClientset()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	recorder, stop := NewEventRecorder(ctx, kube.CoreV1().Events(""), scheme.Scheme, corev1.EventSource{Component: "test"})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u1"}}
	recorder.Event(pod, corev1.EventTypeWarning, "Broken", "it broke")
	err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		events, err := kube.CoreV1().Events("ns").List(ctx, metav1.ListOptions{})
		return err == nil && len(events.Items) == 1 && events.Items[0].Reason == "Broken" && events.Items[0].Source.Component == "test", err
	})
	if err != nil {
		t.Fatalf("the Event did not reach the sink: %v", err)
	}
	stop()
	stop() // a second stop, then the context ending, must not panic
	cancel()
}
