// Command kfakebroker serves the Kafka protocol on a loopback port from an
// in-memory kfake cluster (github.com/twmb/franz-go/pkg/kfake), as a process
// of its own, for the multi-process cluster test in internal/cluster.
//
// It listens on 127.0.0.1, prints one line "listening HOST:PORT" per broker
// on stdout once the brokers accept connections, and runs until SIGINT or
// SIGTERM. Its state lives in memory (or in -data-dir): SIGKILL loses it,
// which is how a test simulates the loss of the broker.
//
// Usage:
//
//	kfakebroker [-port 0] [-brokers 1] [-data-dir DIR] [-log-level none]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "kfakebroker: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	port := flag.Int("port", 0, "port of the first broker on 127.0.0.1 (0: a free port; further brokers take the next ports, or free ones when 0)")
	brokers := flag.Int("brokers", 1, "number of brokers")
	dataDir := flag.String("data-dir", "", "directory that keeps the cluster's state across a clean restart (default: memory only)")
	minSession := flag.Duration("group-min-session-timeout", time.Second, "shortest consumer group session timeout the brokers accept (kfake's default is 6s)")
	partitions := flag.Int("default-partitions", 6, "partitions of topics created with -1 partitions or auto-created")
	level := flag.String("log-level", "none", "broker log level on stderr: none, error, warn, info, debug")
	flag.Parse()
	if *brokers < 1 {
		return fmt.Errorf("-brokers %d: want at least 1", *brokers)
	}
	ports := make([]int, *brokers)
	for i := range ports {
		if *port != 0 {
			ports[i] = *port + i
		}
	}
	opts := []kfake.Opt{
		kfake.Ports(ports...),
		kfake.GroupMinSessionTimeout(*minSession),
		kfake.DefaultNumPartitions(*partitions),
		kfake.WithLogger(kfake.BasicLogger(os.Stderr, logLevel(*level))),
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	// Register for the signals before the address is printed, so a parent
	// that stops the broker right after reading it is never ignored.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start cluster: %w", err)
	}
	for _, addr := range c.ListenAddrs() {
		fmt.Printf("listening %s\n", addr)
	}
	<-sigs
	c.Close()
	return nil
}

func logLevel(s string) kfake.LogLevel {
	switch strings.ToLower(s) {
	case "debug":
		return kfake.LogLevelDebug
	case "info":
		return kfake.LogLevelInfo
	case "warn":
		return kfake.LogLevelWarn
	case "error":
		return kfake.LogLevelError
	}
	return kfake.LogLevelNone
}
