// Command fakecri stands in for a container runtime so that a real kubelet can run pods in the
// cluster tests without containers. It serves the in-memory CRI runtime and image services that
// Kubernetes publishes for its own tests (k8s.io/cri-client/pkg/fake): pods "start" at once and
// kubelet's volume manager still stages and publishes their CSI volumes for real.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	fake "k8s.io/cri-client/pkg/fake"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: fakecri unix:///path/to/cri.sock")
		os.Exit(2)
	}
	service := fake.NewFakeRemoteRuntime()
	// kubelet treats an image without a size as not pulled; the fake reports none by default.
	service.ImageService.SetFakeImageSize(1)
	if err := service.Start(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "fakecri:", err)
		os.Exit(1)
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, os.Interrupt)
	<-signals
	service.Stop()
}
