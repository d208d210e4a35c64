// Command registrar stands in for the node-driver-registrar sidecar, which the Go module proxy
// our machines use does not serve. It takes that sidecar's flags, so the cluster tests run it
// with the chart's own arguments, and does what it does for kubelet: it asks the CSI driver on
// --csi-address for its name (GetPluginInfo), then serves kubelet's plugin-registration API
// (k8s.io/kubelet/pkg/apis/pluginregistration/v1) on <plugin-registration-path>/<name>-reg.sock,
// answering GetInfo with the name and the endpoint kubelet should dial
// (--kubelet-registration-path). kubelet then registers the driver and lists it in the node's
// CSINode object.
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	registration "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

type registrar struct {
	registration.UnimplementedRegistrationServer
	driver   string
	endpoint string
}

func (r *registrar) GetInfo(context.Context, *registration.InfoRequest) (*registration.PluginInfo, error) {
	log.Printf("kubelet asked for the plugin info of %s", r.driver)
	return &registration.PluginInfo{
		Type:              registration.CSIPlugin,
		Name:              r.driver,
		Endpoint:          r.endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (r *registrar) NotifyRegistrationStatus(_ context.Context, status *registration.RegistrationStatus) (*registration.RegistrationStatusResponse, error) {
	if status.PluginRegistered {
		log.Printf("kubelet registered %s", r.driver)
	} else {
		log.Printf("kubelet refused %s: %s", r.driver, status.Error)
	}
	return &registration.RegistrationStatusResponse{}, nil
}

// driverName asks the CSI driver for its name, retrying until it answers (the driver may still
// be starting, as with the real sidecar).
func driverName(ctx context.Context, address string) (string, error) {
	conn, err := grpc.NewClient("unix://"+address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	identity := csi.NewIdentityClient(conn)
	for {
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := identity.GetPluginInfo(callCtx, &csi.GetPluginInfoRequest{})
		cancel()
		if err == nil {
			return info.GetName(), nil
		}
		log.Printf("waiting for the CSI driver on %s: %v", address, err)
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func main() {
	csiAddress := flag.String("csi-address", "", "the CSI driver's socket, as this process reaches it")
	kubeletPath := flag.String("kubelet-registration-path", "", "the CSI driver's socket, as kubelet reaches it")
	registrationDir := flag.String("plugin-registration-path", "/registration", "kubelet's plugins_registry directory")
	flag.Int("v", 0, "log verbosity (accepted for the real sidecar's sake)")
	flag.Parse()
	if *csiAddress == "" || *kubeletPath == "" {
		log.Print("usage: registrar --csi-address PATH --kubelet-registration-path PATH [--plugin-registration-path DIR]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	name, err := driverName(ctx, *csiAddress)
	if err != nil {
		log.Fatal(err)
	}
	socket := filepath.Join(*registrationDir, name+"-reg.sock")
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Fatal(err)
	}
	listener, err := net.Listen("unix", socket)
	if err != nil {
		log.Fatal(err)
	}
	server := grpc.NewServer()
	registration.RegisterRegistrationServer(server, &registrar{driver: name, endpoint: *kubeletPath})
	go func() {
		if err := server.Serve(listener); err != nil {
			log.Print(err)
		}
	}()
	log.Printf("serving registration of %s on %s", name, socket)
	<-ctx.Done()
	server.Stop()
	_ = os.Remove(socket)
}
