package syncer

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// Typed clients (the event recorder's among them) send protobuf: the body is read as JSON.
func TestRequestBodyProtobuf(t *testing.T) {
	event := &corev1.Event{
		TypeMeta:       metav1.TypeMeta{APIVersion: "v1", Kind: "Event"},
		ObjectMeta:     metav1.ObjectMeta{Name: "e", Namespace: "ns"},
		InvolvedObject: corev1.ObjectReference{Namespace: "ns", Name: "x"},
	}
	info, ok := runtime.SerializerInfoForMediaType(clientgoscheme.Codecs.SupportedMediaTypes(), mediaProtobuf)
	if !ok {
		t.Fatal("no protobuf serializer")
	}
	var buf bytes.Buffer
	if err := clientgoscheme.Codecs.EncoderForVersion(info.Serializer, corev1.SchemeGroupVersion).Encode(event, &buf); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/", &buf)
	r.Header.Set("Content-Type", mediaProtobuf)
	mediaType, body, err := requestBody(r)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("not JSON: %v: %s", err, body)
	}
	involved, _ := got["involvedObject"].(map[string]any)
	if mediaType != mediaJSON || got["kind"] != "Event" || involved["namespace"] != "ns" {
		t.Errorf("got %s %v", mediaType, got)
	}

	r = httptest.NewRequest(http.MethodPost, "/", bytes.NewReader([]byte("not protobuf")))
	r.Header.Set("Content-Type", mediaProtobuf)
	if _, _, err := requestBody(r); statusCode(err) != http.StatusBadRequest {
		t.Errorf("invalid protobuf: got %v, want BadRequest", err)
	}
}
