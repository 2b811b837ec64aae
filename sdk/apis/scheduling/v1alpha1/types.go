package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GroupVersionResource names a resource type.
type GroupVersionResource struct {
	// group of the resource; empty for the core group.
	// +optional
	Group string `json:"group,omitempty"`
	// version of the resource.
	// +required
	// +kubebuilder:validation:MinLength=1
	Version string `json:"version"`
	// resource is the plural, lowercase resource name.
	// +required
	// +kubebuilder:validation:MinLength=1
	Resource string `json:"resource"`
}

// Location is a named set of SyncTargets in a location workspace, chosen by label. Placements
// select Locations; TMC then picks one SyncTarget of the Location per namespace.
//
// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,categories=kcp;tmc
// +kubebuilder:printcolumn:name="Resource",type=string,JSONPath=`.spec.resource.resource`
// +kubebuilder:printcolumn:name="Available",type=integer,JSONPath=`.status.availableInstances`
// +kubebuilder:printcolumn:name="Instances",type=integer,JSONPath=`.status.instances`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Location struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec LocationSpec `json:"spec,omitempty"`
	// +optional
	Status LocationStatus `json:"status,omitempty"`
}

// LocationSpec selects the instances of a Location.
type LocationSpec struct {
	// resource is the type of the instances; only workload.kcp.io/v1alpha1 synctargets.
	// +optional
	// +kubebuilder:default={group:"workload.kcp.io",version:"v1alpha1",resource:"synctargets"}
	Resource *GroupVersionResource `json:"resource,omitempty"`

	// description is a human-readable description of the location.
	// +optional
	Description string `json:"description,omitempty"`

	// availableSelectorLabels documents the labels Placements can use to select this
	// Location.
	// +optional
	// +listType=map
	// +listMapKey=key
	AvailableSelectorLabels []AvailableSelectorLabel `json:"availableSelectorLabels,omitempty"`

	// instanceSelector selects the SyncTargets of this Location by label. Empty selects all.
	// Operators are In, NotIn, Exists and DoesNotExist; a selector stored before this was
	// validated that still cannot be parsed keeps every Placement that uses the Location
	// where it is.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="matchExpressions[].operator must be one of In, NotIn, Exists, DoesNotExist (case-sensitive)",reason=FieldValueInvalid
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, !(e.operator in ['In', 'NotIn']) || (has(e.values) && size(e.values) > 0))",message="matchExpressions[].values must be non-empty when the operator is In or NotIn",reason=FieldValueRequired
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, !(e.operator in ['Exists', 'DoesNotExist']) || !has(e.values) || size(e.values) == 0)",message="matchExpressions[].values must be empty when the operator is Exists or DoesNotExist",reason=FieldValueForbidden
	InstanceSelector *metav1.LabelSelector `json:"instanceSelector,omitempty"`
}

// AvailableSelectorLabel documents one label a Location can be selected by.
type AvailableSelectorLabel struct {
	// key of the label.
	// +required
	// +kubebuilder:validation:MinLength=1
	Key string `json:"key"`
	// values the label can take.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +listType=set
	Values []string `json:"values"`
	// description of the label.
	// +optional
	Description string `json:"description,omitempty"`
}

// LocationStatus counts the Location's instances.
type LocationStatus struct {
	// instances is the number of SyncTargets the instanceSelector matches.
	// +optional
	Instances *int32 `json:"instances,omitempty"`
	// availableInstances is the number of those that are Ready and schedulable.
	// +optional
	AvailableInstances *int32 `json:"availableInstances,omitempty"`
}

// LocationList is a list of Locations.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type LocationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`

	Items []Location `json:"items"`
}

// Placement binds the namespaces of a workload workspace that match namespaceSelector to one
// SyncTarget of a Location (in locationWorkspace) that matches locationSelectors.
//
// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,categories=kcp;tmc
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Location",type=string,JSONPath=`.status.selectedLocation.locationName`
// +kubebuilder:printcolumn:name="SyncTarget",type=string,JSONPath=`.status.selectedSyncTarget.name`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Placement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec PlacementSpec `json:"spec,omitempty"`
	// +optional
	Status PlacementStatus `json:"status,omitempty"`
}

// PlacementSpec says which namespaces go where.
type PlacementSpec struct {
	// locationSelectors select Locations by label; a Location matching any selector
	// qualifies. Empty selects every Location. Operators are In, NotIn, Exists and
	// DoesNotExist. At most three selectors: the apiserver's cost budget for validating them
	// allows no more (one selector with In over several values selects more Locations).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=3
	// +kubebuilder:validation:items:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="matchExpressions[].operator must be one of In, NotIn, Exists, DoesNotExist (case-sensitive)",reason=FieldValueInvalid
	// +kubebuilder:validation:items:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, !(e.operator in ['In', 'NotIn']) || (has(e.values) && size(e.values) > 0))",message="matchExpressions[].values must be non-empty when the operator is In or NotIn",reason=FieldValueRequired
	// +kubebuilder:validation:items:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, !(e.operator in ['Exists', 'DoesNotExist']) || !has(e.values) || size(e.values) == 0)",message="matchExpressions[].values must be empty when the operator is Exists or DoesNotExist",reason=FieldValueForbidden
	LocationSelectors []metav1.LabelSelector `json:"locationSelectors,omitempty"`

	// locationResource is the type of the Location's instances.
	// +optional
	// +kubebuilder:default={group:"workload.kcp.io",version:"v1alpha1",resource:"synctargets"}
	LocationResource *GroupVersionResource `json:"locationResource,omitempty"`

	// namespaceSelector selects the namespaces of this workspace to place. A nil selector
	// selects none; an empty one selects all. Operators are In, NotIn, Exists and
	// DoesNotExist. A selector that cannot be evaluated (stored before this was validated)
	// changes nothing: every namespace keeps its SyncTargets and condition SelectorValid
	// says why.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="matchExpressions[].operator must be one of In, NotIn, Exists, DoesNotExist (case-sensitive)",reason=FieldValueInvalid
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, !(e.operator in ['In', 'NotIn']) || (has(e.values) && size(e.values) > 0))",message="matchExpressions[].values must be non-empty when the operator is In or NotIn",reason=FieldValueRequired
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, !(e.operator in ['Exists', 'DoesNotExist']) || !has(e.values) || size(e.values) == 0)",message="matchExpressions[].values must be empty when the operator is Exists or DoesNotExist",reason=FieldValueForbidden
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// deletionPolicy says what happens to the downstream copies when a namespace placed
	// through this Placement is removed from a SyncTarget (unscheduled, moved, drained, or
	// the SyncTarget deleted): Delete (the default) deletes them; Orphan leaves them
	// running on the physical cluster without TMC's ownership label. The controller writes
	// it to the namespace annotation workload.tmc.dev/deletion-policy, which the syncer
	// reads; an object's own annotation wins.
	// +optional
	// +kubebuilder:default=Delete
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// statefulFailover says whether automatic failover may move a namespace that holds
	// persistent data: PersistentVolumeClaims, or StatefulSets with volumeClaimTemplates,
	// upstream. Automatic failover is the move off a SyncTarget that has not been Ready for
	// longer than the grace period. Never (the default): such a namespace stays where its
	// data is, and the Placement and the namespace say so. Allowed: it moves like any other
	// namespace, and its new PersistentVolumeClaims start empty. Draining a SyncTarget
	// (spec.evictAfter) moves it either way.
	// +optional
	// +kubebuilder:default=Never
	StatefulFailover StatefulFailoverPolicy `json:"statefulFailover,omitempty"`

	// locationWorkspace is the logical-cluster path of the workspace holding the Locations
	// and SyncTargets.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(:[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	LocationWorkspace string `json:"locationWorkspace"`
}

// DeletionPolicy says what happens to downstream copies when a namespace leaves a
// SyncTarget. The values are those of the annotation workload.tmc.dev/deletion-policy.
// +kubebuilder:validation:Enum=Delete;Orphan
type DeletionPolicy string

const (
	// DeletionPolicyDelete deletes the downstream copies.
	DeletionPolicyDelete DeletionPolicy = "Delete"
	// DeletionPolicyOrphan leaves the downstream copies running, unlabelled.
	DeletionPolicyOrphan DeletionPolicy = "Orphan"
)

// StatefulFailoverPolicy says whether automatic failover may move a namespace that holds
// persistent data.
// +kubebuilder:validation:Enum=Never;Allowed
type StatefulFailoverPolicy string

const (
	// StatefulFailoverNever keeps such a namespace on its SyncTarget until it is drained.
	StatefulFailoverNever StatefulFailoverPolicy = "Never"
	// StatefulFailoverAllowed moves it like any other namespace.
	StatefulFailoverAllowed StatefulFailoverPolicy = "Allowed"
)

// PlacementPhase is the lifecycle phase of a Placement.
// +kubebuilder:validation:Enum=Pending;Bound;Unbound
type PlacementPhase string

const (
	// PlacementPending means no Location has been selected yet.
	PlacementPending PlacementPhase = "Pending"
	// PlacementBound means namespaces are placed through this Placement.
	PlacementBound PlacementPhase = "Bound"
	// PlacementUnbound means a Location is selected but no namespace uses it.
	PlacementUnbound PlacementPhase = "Unbound"
)

// PlacementStatus reports the scheduling decision.
type PlacementStatus struct {
	// phase of the Placement.
	// +optional
	// +kubebuilder:default=Pending
	Phase PlacementPhase `json:"phase,omitempty"`

	// selectedLocation is the Location chosen.
	// +optional
	SelectedLocation *LocationReference `json:"selectedLocation,omitempty"`

	// selectedSyncTarget is the SyncTarget chosen within the Location.
	// +optional
	SelectedSyncTarget *SyncTargetReference `json:"selectedSyncTarget,omitempty"`

	// conditions: Ready, Scheduled, SelectorValid and Unscheduling.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// LocationReference names a Location in a workspace.
type LocationReference struct {
	// path of the location workspace.
	Path string `json:"path"`
	// locationName is the Location's name.
	LocationName string `json:"locationName"`
}

// SyncTargetReference names a SyncTarget in a workspace.
type SyncTargetReference struct {
	// path of the location workspace.
	Path string `json:"path"`
	// name of the SyncTarget.
	Name string `json:"name"`
	// key is the SyncTarget key used in labels and annotations.
	// +optional
	Key string `json:"key,omitempty"`
}

// PlacementList is a list of Placements.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type PlacementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`

	Items []Placement `json:"items"`
}

// Condition types and reasons of a Placement.
const (
	PlacementReady     = "Ready"
	PlacementScheduled = "Scheduled"
	// PlacementSelectorValid is False while a selector the Placement depends on (its
	// namespaceSelector, its locationSelectors, or the instanceSelector of a Location they
	// match) cannot be evaluated; its namespaces then keep their SyncTargets.
	PlacementSelectorValid = "SelectorValid"
	// PlacementUnscheduling is True while namespaces this Placement placed and no longer
	// selects are being removed from their SyncTargets.
	PlacementUnscheduling = "Unscheduling"

	ReasonLocationNotFound = "LocationNotFound"
	ReasonLocationInvalid  = "LocationInvalid"
	ReasonLocationNoMatch  = "LocationNoMatch"
	ReasonNoValidTarget    = "NoValidTarget"
	ReasonScheduled        = "Scheduled"
	ReasonRescheduling     = "Rescheduling"
	ReasonPlacementReady   = "Ready"
	// ReasonFailoverHeld: namespaces holding persistent data stay on SyncTargets that are
	// not Ready, as statefulFailover is Never.
	ReasonFailoverHeld = "FailoverHeld"
	// ReasonInvalidSelector: a selector cannot be evaluated (SelectorValid and Scheduled).
	ReasonInvalidSelector = "InvalidSelector"
	ReasonSelectorsValid  = "SelectorsValid"
	// ReasonNamespacesUnscheduling and ReasonNoneUnscheduling are the Unscheduling reasons.
	ReasonNamespacesUnscheduling = "NamespacesUnscheduling"
	ReasonNoneUnscheduling       = "NoneUnscheduling"
)

// Annotations and labels the placement controller uses.
const (
	// PlacementAnnotationKey on a namespace names the Placement that placed it.
	PlacementAnnotationKey = "scheduling.kcp.io/placement"
	// InternalSyncTargetAnnotationKey on a Placement holds the chosen SyncTarget key.
	InternalSyncTargetAnnotationKey = "internal.workload.kcp.io/synctarget"
)
