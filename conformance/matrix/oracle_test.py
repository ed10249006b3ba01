#!/usr/bin/env python3
"""oracle_test.py: hand-checked cases of the Kubernetes egress semantics, so
that the oracle is tested on its own, not just against netfence. Run by
test_matrix.sh before anything else; exit status 1 on a failure."""
import sys

import oracle as o


def pod(ns, name, ip4, ip6, ports=()):
    return {"key": ns + "-" + name, "namespace": ns, "name": name, "labels": {"pod": name},
            "ips": {"4": ip4, "6": ip6}, "ports": list(ports)}


XA = pod("x", "a", "10.0.0.1", "fd00::1")
XB = pod("x", "b", "10.0.0.2", "fd00::2", [{"name": "http", "containerPort": 80, "protocol": "TCP"}])
YA = pod("y", "a", "10.0.0.3", "fd00::3", [{"name": "http", "containerPort": 81, "protocol": "TCP"},
                                           {"name": "dns", "containerPort": 80, "protocol": "UDP"}])
EXT = "192.0.2.1"


def model(*pols):
    m = {"pods": [XA, XB, YA], "externals": [], "namespaces": {"x": {"ns": "x"}, "y": {"ns": "y"}},
         "policies": {}}
    for i, spec in enumerate(pols):
        ns = spec.pop("_ns", "x")
        m["policies"]["%s/p%d" % (ns, i)] = {"metadata": {"name": "p%d" % i, "namespace": ns}, "spec": spec}
    return m


def v(m, src, dst, addr, proto="tcp", port=80):
    return o.verdict(m, src, dst, addr, proto, port)


fails = 0


def check(desc, got, want):
    global fails
    if got != want:
        fails += 1
        print("oracle_test: FAIL %s: got %s, want %s" % (desc, got, want))


SEL_A = {"matchLabels": {"pod": "a"}}
check("no policy", v(model(), XA, YA, "10.0.0.3"), "allow")
check("loopback", v(model({"podSelector": {}, "policyTypes": ["Egress"]}), XA, XA, "10.0.0.1"), "loopback")
check("deny-all", v(model({"podSelector": {}, "policyTypes": ["Egress"]}), XA, YA, "10.0.0.3"), "deny")
check("deny-all in another ns", v(model({"_ns": "y", "podSelector": {}, "policyTypes": ["Egress"]}), XA, YA, "10.0.0.3"), "allow")
check("egress: [] without policyTypes = ingress only", v(model({"podSelector": {}, "egress": []}), XA, YA, "10.0.0.3"), "allow")
check("egress rules without policyTypes", v(model({"podSelector": {}, "egress": [{"to": [{"podSelector": {}}]}]}), XA, YA, "10.0.0.3"), "deny")
check("explicit Ingress ignores egress", v(model({"podSelector": {}, "policyTypes": ["Ingress"], "egress": [{"to": [{"podSelector": {}}]}]}), XA, YA, "10.0.0.3"), "allow")
check("podSelector is namespace-scoped", v(model({"podSelector": SEL_A, "egress": [{"to": [{"podSelector": {}}]}]}), XA, YA, "10.0.0.3"), "deny")
check("podSelector own ns", v(model({"podSelector": SEL_A, "egress": [{"to": [{"podSelector": {}}]}]}), XA, XB, "10.0.0.2"), "allow")
check("namespaceSelector", v(model({"podSelector": SEL_A, "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]}), XA, YA, "fd00::3"), "allow")
check("ns AND pod", v(model({"podSelector": SEL_A, "egress": [{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"pod": "b"}}}]}]}), XA, YA, "10.0.0.3"), "deny")
check("metadata.name label", v(model({"podSelector": SEL_A, "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}}}]}]}), XA, YA, "10.0.0.3"), "allow")
NOTIN = {"podSelector": {}, "egress": [{"to": [{"podSelector": {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["v"]}]}}]}]}
check("NotIn absent key", v(model(NOTIN), XA, XB, "10.0.0.2"), "allow")
IB = {"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/24", "except": ["10.0.0.2/32"]}}]}]}
check("ipBlock pod", v(model(dict(IB)), XA, YA, "10.0.0.3"), "allow")
check("ipBlock except", v(model(dict(IB)), XA, XB, "10.0.0.2"), "deny")
check("ipBlock other family", v(model(dict(IB)), XA, YA, "fd00::3"), "deny")
check("ipBlock non-pod", v(model(dict(IB)), XA, None, "10.0.0.9"), "allow")
check("selector never matches non-pod", v(model({"podSelector": {}, "egress": [{"to": [{"namespaceSelector": {}}]}]}), XA, None, EXT), "deny")
PORT = {"podSelector": {}, "egress": [{"ports": [{"port": 80}]}]}
check("port default TCP", v(model(dict(PORT)), XA, None, EXT, "tcp", 80), "allow")
check("port default TCP, udp", v(model(dict(PORT)), XA, None, EXT, "udp", 80), "deny")
RANGE = {"podSelector": {}, "egress": [{"ports": [{"protocol": "UDP", "port": 81, "endPort": 90}]}]}
check("endPort in", v(model(dict(RANGE)), XA, None, EXT, "udp", 81), "allow")
check("endPort below", v(model(dict(RANGE)), XA, None, EXT, "udp", 80), "deny")
check("protocol without port", v(model({"podSelector": {}, "egress": [{"ports": [{"protocol": "UDP"}]}]}), XA, None, EXT, "udp", 81), "allow")
check("SCTP only", v(model({"podSelector": {}, "egress": [{"ports": [{"protocol": "SCTP", "port": 80}]}]}), XA, XB, "10.0.0.2", "tcp", 80), "deny")
NAMED = {"podSelector": {}, "egress": [{"ports": [{"port": "http"}]}]}
check("named port", v(model(dict(NAMED)), XA, XB, "10.0.0.2", "tcp", 80), "allow")
check("named port, per destination", v(model(dict(NAMED)), XA, YA, "10.0.0.3", "tcp", 80), "deny")
check("named port, per destination 81", v(model(dict(NAMED)), XA, YA, "10.0.0.3", "tcp", 81), "allow")
check("named port, non-pod", v(model(dict(NAMED)), XA, None, EXT, "tcp", 80), "deny")
check("named port, wrong protocol", v(model({"podSelector": {}, "egress": [{"ports": [{"port": "dns", "protocol": "TCP"}]}]}), XA, YA, "10.0.0.3", "tcp", 80), "deny")
check("union", v(model({"podSelector": {}, "policyTypes": ["Egress"]}, {"podSelector": SEL_A, "egress": [{}]}), XA, YA, "10.0.0.3"), "allow")
check("union, other pod", v(model({"podSelector": {}, "policyTypes": ["Egress"]}, {"podSelector": SEL_A, "egress": [{}]}), XB, YA, "10.0.0.3"), "deny")
print("oracle_test: %s" % ("%d failed" % fails if fails else "all cases hold"))
sys.exit(1 if fails else 0)
