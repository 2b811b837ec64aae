package syncer

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

const (
	mediaJSON     = "application/json"
	mediaProtobuf = "application/vnd.kubernetes.protobuf"
)

// requestBody reads the body of a write and returns it as JSON with its media type: a
// protobuf body (client-go's typed clients send built-in types so, the event recorder
// included) is decoded with client-go's scheme and re-encoded as JSON.
func requestBody(r *http.Request) (string, []byte, error) {
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes))
	if err != nil {
		return "", nil, apierrors.NewBadRequest(fmt.Sprintf("failed to read the request body: %v", err))
	}
	if mediaType != mediaProtobuf {
		return mediaType, body, nil
	}
	obj, gvk, err := clientgoscheme.Codecs.UniversalDeserializer().Decode(body, nil, nil)
	if err != nil {
		return "", nil, apierrors.NewBadRequest(fmt.Sprintf("failed to decode the protobuf body: %v", err))
	}
	obj.GetObjectKind().SetGroupVersionKind(*gvk)
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return "", nil, apierrors.NewBadRequest(fmt.Sprintf("failed to convert the protobuf body: %v", err))
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", nil, apierrors.NewInternalError(err)
	}
	return mediaJSON, b, nil
}
