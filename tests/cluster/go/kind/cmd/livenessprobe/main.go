// Command livenessprobe stands in for the livenessprobe sidecar
// (registry.k8s.io/sig-storage/livenessprobe), which no registry reachable here serves and whose
// module the Go module proxy does not serve either. It takes the sidecar's flags (the chart's
// own arguments) and does what the sidecar does for kubelet's liveness probe: every GET
// /healthz calls the CSI driver's Identity.Probe on --csi-address within --probe-timeout, and
// answers 200 when the driver answers ready, 500 when it fails, does not answer in time, or is
// not ready. A driver that stops answering (a hung or stopped process) therefore fails the
// probe, and kubelet restarts its container. Like the sidecar it listens on all addresses of
// the pod (kubelet probes the node pod at the node's IP); --http-endpoint overrides that.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"time"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func main() {
	csiAddress := flag.String("csi-address", "/run/csi/socket", "the CSI driver's socket")
	healthPort := flag.Int("health-port", 9808, "the port /healthz is served on")
	httpEndpoint := flag.String("http-endpoint", "", "the address to serve on (default :<health-port>)")
	probeTimeout := flag.Duration("probe-timeout", time.Second, "the time each Probe call may take")
	flag.Int("v", 0, "log verbosity (accepted as the sidecar accepts it)")
	flag.Parse()
	address := *httpEndpoint
	if address == "" {
		address = fmt.Sprintf(":%d", *healthPort)
	}
	conn, err := grpc.NewClient("unix://"+*csiAddress, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatalf("csi address %s: %v", *csiAddress, err)
	}
	identity := csi.NewIdentityClient(conn)
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), *probeTimeout)
		defer cancel()
		response, err := identity.Probe(ctx, &csi.ProbeRequest{})
		switch {
		case err != nil:
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "probe failed: %v\n", err)
			log.Printf("health check failed: %v", err)
		case response.GetReady() != nil && !response.GetReady().GetValue():
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintln(w, "driver not ready")
			log.Print("health check failed: driver not ready")
		default:
			fmt.Fprintln(w, "ok")
		}
	})
	log.Printf("serving /healthz on %s for %s", address, *csiAddress)
	log.Fatal(http.ListenAndServe(address, nil))
}
