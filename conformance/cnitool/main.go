// cnitool: a copy of upstream's containernetworking/cni cnitool, built
// offline against Debian's libcni 1.1.2 (no GC/STATUS there).
//
//	cnitool add|check|del <net> <netns-path>
//
// Environment: NETCONFPATH (default /etc/cni/net.d), CNI_PATH, CNI_ARGS
// (K=V;K=V), CAP_ARGS (JSON), CNI_IFNAME (default eth0).
// Extension: CNI_CACHE_DIR sets libcni's cache dir (default /var/lib/cni),
// so tests never write the host's cache.
package main

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

const (
	EnvCNIPath        = "CNI_PATH"
	EnvNetDir         = "NETCONFPATH"
	EnvCapabilityArgs = "CAP_ARGS"
	EnvCNIArgs        = "CNI_ARGS"
	EnvCNIIfname      = "CNI_IFNAME"
	EnvCacheDir       = "CNI_CACHE_DIR"

	DefaultNetDir = "/etc/cni/net.d"

	CmdAdd   = "add"
	CmdCheck = "check"
	CmdDel   = "del"
)

func parseArgs(args string) ([][2]string, error) {
	var result [][2]string

	pairs := strings.Split(args, ";")
	for _, pair := range pairs {
		kv := strings.Split(pair, "=")
		if len(kv) != 2 || kv[0] == "" || kv[1] == "" {
			return nil, fmt.Errorf("invalid CNI_ARGS pair %q", pair)
		}
		result = append(result, [2]string{kv[0], kv[1]})
	}
	return result, nil
}

func main() {
	if len(os.Args) < 4 {
		usage()
	}
	switch os.Args[1] {
	case CmdAdd, CmdCheck, CmdDel:
	default:
		usage()
	}

	netdir := os.Getenv(EnvNetDir)
	if netdir == "" {
		netdir = DefaultNetDir
	}
	netconf, err := libcni.LoadConfList(netdir, os.Args[2])
	if err != nil {
		exit(err)
	}

	var capabilityArgs map[string]interface{}
	if v := os.Getenv(EnvCapabilityArgs); len(v) > 0 {
		if err = json.Unmarshal([]byte(v), &capabilityArgs); err != nil {
			exit(err)
		}
	}

	var cniArgs [][2]string
	if args := os.Getenv(EnvCNIArgs); len(args) > 0 {
		cniArgs, err = parseArgs(args)
		if err != nil {
			exit(err)
		}
	}

	ifName, ok := os.LookupEnv(EnvCNIIfname)
	if !ok {
		ifName = "eth0"
	}

	netns, err := filepath.Abs(os.Args[3])
	if err != nil {
		exit(err)
	}

	// Same container ID as upstream: hash of the netns path.
	s := sha512.Sum512([]byte(netns))
	containerID := fmt.Sprintf("cnitool-%x", s[:10])

	paths := filepath.SplitList(os.Getenv(EnvCNIPath))
	var cninet *libcni.CNIConfig
	if dir := os.Getenv(EnvCacheDir); dir != "" {
		cninet = libcni.NewCNIConfigWithCacheDir(paths, dir, nil)
	} else {
		cninet = libcni.NewCNIConfig(paths, nil)
	}

	rt := &libcni.RuntimeConf{
		ContainerID:    containerID,
		NetNS:          netns,
		IfName:         ifName,
		Args:           cniArgs,
		CapabilityArgs: capabilityArgs,
	}

	switch os.Args[1] {
	case CmdAdd:
		result, err := cninet.AddNetworkList(context.TODO(), netconf, rt)
		if result != nil {
			_ = result.Print()
		}
		exit(err)
	case CmdCheck:
		exit(cninet.CheckNetworkList(context.TODO(), netconf, rt))
	case CmdDel:
		exit(cninet.DelNetworkList(context.TODO(), netconf, rt))
	}
}

func usage() {
	exe := filepath.Base(os.Args[0])
	fmt.Fprintf(os.Stderr, "%s: Add, check, or remove network interfaces from a network namespace\n", exe)
	fmt.Fprintf(os.Stderr, "  %s add   <net> <netns>\n", exe)
	fmt.Fprintf(os.Stderr, "  %s check <net> <netns>\n", exe)
	fmt.Fprintf(os.Stderr, "  %s del   <net> <netns>\n", exe)
	os.Exit(1)
}

func exit(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}
