// Command kindnetd stands in for kind's CNI daemon (docker.io/kindest/kindnetd) in node images
// built without a registry: kindnetd's source is not a published Go module. It is run by kind's
// own default CNI manifest, under kindnetd's image name, with the environment that manifest
// gives it (HOST_IP, POD_SUBNET) and the node's /etc/cni/net.d mounted, and it keeps a node's
// pod network the way kindnetd does on a cluster whose pods talk only to each other:
//   - once the API server has given this node a podCIDR, it writes the CNI configuration for it
//     (ptp + host-local + portmap, the plugins kindnetd configures);
//   - it routes every other node's podCIDR through that node's InternalIP.
//
// Not done, unlike kindnetd: masquerading traffic that leaves the cluster (a kind cluster here
// has no outside to reach), network policies, NRI, IPv6.
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const confName = "10-kindnet.conflist"

// The configuration kindnetd writes for a node, without its masquerade.
const conflist = `{
  "cniVersion": "0.3.1",
  "name": "kindnet",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "/run/cni-ipam-state",
        "routes": [{"dst": "0.0.0.0/0"}],
        "ranges": [[{"subnet": "%s"}]]
      },
      "mtu": %d
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`

func internalIPv4(node *corev1.Node) string {
	for _, address := range node.Status.Addresses {
		if address.Type == corev1.NodeInternalIP && net.ParseIP(address.Address).To4() != nil {
			return address.Address
		}
	}
	return ""
}

// linkMTU is the MTU of the interface holding hostIP: pods must not send bigger packets than
// the node's own network carries.
func linkMTU(hostIP string) int {
	links, err := netlink.LinkList()
	if err != nil {
		return 1500
	}
	for _, link := range links {
		addresses, _ := netlink.AddrList(link, netlink.FAMILY_V4)
		for _, address := range addresses {
			if address.IP.String() == hostIP {
				return link.Attrs().MTU
			}
		}
	}
	return 1500
}

type network struct {
	hostIP  string
	confDir string
	written string            // the configuration last written
	routes  map[string]string // podCIDR -> gateway, as routed
}

func (n *network) writeConf(podCIDR string) error {
	conf := fmt.Sprintf(conflist, podCIDR, linkMTU(n.hostIP))
	if conf == n.written {
		return nil
	}
	path := filepath.Join(n.confDir, confName)
	// Renamed into place: kubelet and containerd never read a half-written file.
	if err := os.WriteFile(path+".tmp", []byte(conf), 0o644); err != nil {
		return err
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return err
	}
	n.written = conf
	log.Printf("wrote %s for pod subnet %s", path, podCIDR)
	return nil
}

func (n *network) route(node *corev1.Node, podCIDR, gateway string) error {
	if n.routes[podCIDR] == gateway {
		return nil
	}
	_, destination, err := net.ParseCIDR(podCIDR)
	if err != nil {
		return err
	}
	if err := netlink.RouteReplace(&netlink.Route{Dst: destination, Gw: net.ParseIP(gateway)}); err != nil {
		return err
	}
	n.routes[podCIDR] = gateway
	log.Printf("route %s via %s (node %s)", podCIDR, gateway, node.Name)
	return nil
}

func (n *network) sync(nodes []corev1.Node) {
	for i := range nodes {
		node := &nodes[i]
		ip, podCIDR := internalIPv4(node), node.Spec.PodCIDR
		if ip == "" || podCIDR == "" {
			continue
		}
		var err error
		if ip == n.hostIP {
			err = n.writeConf(podCIDR)
		} else {
			err = n.route(node, podCIDR, ip)
		}
		if err != nil {
			log.Printf("node %s: %v", node.Name, err)
		}
	}
}

func main() {
	n := &network{hostIP: os.Getenv("HOST_IP"), confDir: "/etc/cni/net.d", routes: map[string]string{}}
	if dir := os.Getenv("CNI_CONFIG_DIR"); dir != "" {
		n.confDir = dir
	}
	config, err := rest.InClusterConfig()
	if err != nil {
		log.Fatalf("in-cluster config: %v", err)
	}
	client := kubernetes.NewForConfigOrDie(config)
	log.Printf("kindnetd stand-in: host %s, cluster pod subnet %s", n.hostIP, os.Getenv("POD_SUBNET"))
	// A new node gets its podCIDR within seconds of joining; a few seconds' delay in routing to
	// it is what kindnetd's own resync allows too.
	for ; ; time.Sleep(5 * time.Second) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		cancel()
		if err != nil {
			log.Printf("list nodes: %v", err)
			continue
		}
		n.sync(nodes.Items)
	}
}
