package tmc

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// NewEventRecorder records Events through sink as source until ctx ends or the returned
// stop is called (either may come first; stop may be called more than once). Every TMC
// component that reports to users records its Events this way.
func NewEventRecorder(ctx context.Context, sink typedcorev1.EventInterface, scheme *runtime.Scheme, source corev1.EventSource) (record.EventRecorder, func()) {
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: sink})
	stopOnDone := context.AfterFunc(ctx, broadcaster.Shutdown)
	stop := func() {
		if stopOnDone() {
			broadcaster.Shutdown()
		}
	}
	return broadcaster.NewRecorder(scheme, source), stop
}
