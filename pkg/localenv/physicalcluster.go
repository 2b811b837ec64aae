package localenv

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// PhysicalClusterOptions configures a physical cluster.
type PhysicalClusterOptions struct {
	// Name of the cluster, e.g. "east".
	Name string
	// Nodes is the number of kwok nodes (default 1).
	Nodes int
	// NodeCPU, NodeMemory and NodePods are each node's capacity (defaults 32, 256Gi, 110).
	NodeCPU, NodeMemory, NodePods string
	// PersistentVolumes is the size of the pool of pre-created volumes of the default
	// StorageClass that claims bind to (default 32; negative: no pool, no StorageClass).
	PersistentVolumes int
	// PersistentVolumeSize is each pool volume's capacity (default 10Gi); a claim asking
	// for more stays Pending.
	PersistentVolumeSize string
	// PortForwardTarget is the host:port every port-forward to a pod of the cluster reaches;
	// empty: an HTTP echo server of the environment (podserving.go).
	PortForwardTarget string
}

// PhysicalCluster is a kube-apiserver, kube-controller-manager, kube-scheduler and kwok
// with fake nodes: Deployments get pods that are scheduled and become Running and Ready,
// namespaces finish deleting, garbage collection works and claims bind to a pool of
// volumes of the default StorageClass (createVolumePool). kwok also serves the pods' logs,
// exec and port-forward (Pods, podserving.go).
type PhysicalCluster struct {
	Name              string
	APIServer         *APIServer
	ControllerManager *Process
	Scheduler         *Process
	Kwok              *Process
	// KubeconfigPath is an admin kubeconfig straight to the apiserver.
	KubeconfigPath string
	// Pods is what kwok serves for the cluster's pods: the log file, the port-forward target.
	Pods *PodServing
}

func startPhysicalCluster(ctx context.Context, env *Environment, opts PhysicalClusterOptions) (*PhysicalCluster, error) {
	if opts.Nodes == 0 {
		opts.Nodes = 1
	}
	if opts.NodeCPU == "" {
		opts.NodeCPU = "32"
	}
	if opts.NodeMemory == "" {
		opts.NodeMemory = "256Gi"
	}
	if opts.NodePods == "" {
		opts.NodePods = "110"
	}
	if opts.PersistentVolumes == 0 {
		opts.PersistentVolumes = defaultPersistentVolumes
	}
	if opts.PersistentVolumeSize == "" {
		opts.PersistentVolumeSize = defaultPersistentVolumeSize
	}
	pods, err := env.setUpPodServing(opts.Name, opts.PortForwardTarget)
	if err != nil {
		return nil, fmt.Errorf("physical cluster %s: %w", opts.Name, err)
	}
	as, err := StartAPIServer(ctx, env.bins, env.PKI, env.Tokens, APIServerOptions{
		Name:       "cluster-" + opts.Name,
		EtcdURL:    env.Etcd.ClientURL,
		EtcdPrefix: "/clusters/" + opts.Name,
		ExtraArgs:  kubeletArgs(env.PKI.CAFile),
	}, env.LogDir)
	if err != nil {
		return nil, fmt.Errorf("physical cluster %s: %w", opts.Name, err)
	}
	pc := &PhysicalCluster{Name: opts.Name, APIServer: as, Pods: pods}
	env.track(as.Process)

	kubeconfig, err := WriteKubeconfig(as.AdminConfig(), "cluster-"+opts.Name, filepath.Join(env.Dir, "kubeconfigs", "cluster-"+opts.Name+".kubeconfig"))
	if err != nil {
		return nil, err
	}
	pc.KubeconfigPath = kubeconfig
	if err := pc.startComponents(env, kubeconfig); err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(as.AdminConfig())
	if err != nil {
		return nil, fmt.Errorf("failed to create client: %w", err)
	}
	for i := range opts.Nodes {
		if err := createNode(ctx, client, opts, i); err != nil {
			return nil, err
		}
	}
	if err := pc.waitNodesReady(ctx, client, opts.Nodes); err != nil {
		return nil, err
	}
	if opts.PersistentVolumes > 0 {
		if err := createVolumePool(ctx, client, env.Dir, opts); err != nil {
			return nil, fmt.Errorf("physical cluster %s: %w", opts.Name, err)
		}
	}
	return pc, nil
}

// clusterControllerManagerArgs are the flags of a kube-controller-manager that runs a whole
// cluster's controllers (a physical cluster's or a hub's) with the given kubeconfig; the
// caller adds --controllers and the rest.
func (env *Environment) clusterControllerManagerArgs(kubeconfig string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--service-account-private-key-file=" + env.PKI.ServiceAccountKeyFile,
		"--root-ca-file=" + env.PKI.CAFile,
		"--use-service-account-credentials=true",
		"--leader-elect=false",
		"--secure-port=0",
	}
}

// startComponents starts the controller-manager, the scheduler and kwok of the cluster.
func (pc *PhysicalCluster) startComponents(env *Environment, kubeconfig string) error {
	kwokServing, err := env.PKI.ServingCert("cluster-" + pc.Name + "-kwok")
	if err != nil {
		return fmt.Errorf("physical cluster %s: %w", pc.Name, err)
	}
	pc.ControllerManager = NewProcess("cluster-"+pc.Name+"-controller-manager", env.bins.Path(BinKubeControllerManager), append(env.clusterControllerManagerArgs(kubeconfig),
		"--controllers=*,-node-ipam-controller,-serviceaccount-token-controller",
		"--concurrent-deployment-syncs=10",
		"--concurrent-replicaset-syncs=10",
		// A claim created while the binder was starting is looked at again on this period.
		"--pvclaimbinder-sync-period=5s",
		"--v=1",
	), env.LogDir)
	pc.Scheduler = NewProcess("cluster-"+pc.Name+"-scheduler", env.bins.Path(BinKubeScheduler), []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--v=1",
	}, env.LogDir)
	pc.Kwok = NewProcess("cluster-"+pc.Name+"-kwok", env.bins.Path(BinKwok), []string{
		"--kubeconfig=" + kubeconfig,
		"--config=" + env.bins.Path(kwokStagesFile),
		"--config=" + pc.Pods.configPath,
		"--manage-all-nodes=true",
		"--node-lease-duration-seconds=40",
		"--cidr=10.244.0.0/16",
		"--node-ip=127.0.0.1",
		// The kubelet API of every node (logs, exec, port-forward), advertised by the nodes.
		fmt.Sprintf("--node-port=%d", pc.Pods.KubeletPort),
		fmt.Sprintf("--server-address=127.0.0.1:%d", pc.Pods.KubeletPort),
		"--tls-cert-file=" + kwokServing.CertFile,
		"--tls-private-key-file=" + kwokServing.KeyFile,
	}, env.LogDir)
	for _, p := range []*Process{pc.ControllerManager, pc.Scheduler, pc.Kwok} {
		if err := p.Start(); err != nil {
			return fmt.Errorf("physical cluster %s: %w", pc.Name, err)
		}
		env.track(p)
	}
	return nil
}

// createNode creates fake node i, which kwok makes Ready.
func createNode(ctx context.Context, client kubernetes.Interface, opts PhysicalClusterOptions, i int) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        fmt.Sprintf("kwok-%s-%d", opts.Name, i),
			Labels:      map[string]string{"type": "kwok", "kubernetes.io/hostname": fmt.Sprintf("kwok-%s-%d", opts.Name, i), "kubernetes.io/os": "linux"},
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
		},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse(opts.NodeCPU),
				corev1.ResourceMemory: resource.MustParse(opts.NodeMemory),
				corev1.ResourcePods:   resource.MustParse(opts.NodePods),
			},
			Capacity: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse(opts.NodeCPU),
				corev1.ResourceMemory: resource.MustParse(opts.NodeMemory),
				corev1.ResourcePods:   resource.MustParse(opts.NodePods),
			},
		},
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create node %s: %w", node.Name, err)
	}
	return nil
}

func (pc *PhysicalCluster) waitNodesReady(ctx context.Context, client kubernetes.Interface, n int) error {
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		ready := 0
		for _, node := range nodes.Items {
			for _, c := range node.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready >= n, nil
	})
	if err != nil {
		return fmt.Errorf("physical cluster %s: %d kwok nodes did not become Ready (see %s): %w", pc.Name, n, pc.Kwok.LogPath, err)
	}
	return nil
}

// AdminConfig returns an admin rest config to the cluster's apiserver.
func (pc *PhysicalCluster) AdminConfig() *rest.Config { return pc.APIServer.AdminConfig() }

// Config returns a rest config for user to the cluster's apiserver.
func (pc *PhysicalCluster) Config(user string) *rest.Config { return pc.APIServer.Config(user) }

// Processes returns the cluster's processes.
func (pc *PhysicalCluster) Processes() []*Process {
	return []*Process{pc.Kwok, pc.Scheduler, pc.ControllerManager, pc.APIServer.Process}
}
