#!/usr/bin/env python3
"""gen.py: the benchmark's manifests, deterministic (seeded).

    gen.py OUTDIR --sizes 10,100,1000 --peers 10,1000,10000

Writes JSON `List` manifests for `netfencectl apply -f`:
  namespaces.json   kube-system and ns0..ns4 (labels team, env)
  policies-K.json   the first K generated NetworkPolicies (K in --sizes)
  del-K.json        policies K..max-1: `delete -f` goes back to the smallest size
  bulk.json         policies min..max-2 plus `canary0-deny`: applied at once,
                    from the smallest size, it brings the state to max policies
  sel100.json       one policy in ns1 with podSelector {} (every pod of ns1)
  noop.json         one policy in namespace nfb-empty, where no pod lives
  dp-N.json         policy dp-peers (ns0, app=dp): N ipBlock /32 peers, no
                    two adjacent (so that its set holds N ranges), the
                    external host 203.0.113.80/32 last (N in --peers)

The pods the benchmark attaches (bench/run.sh): pod j (j >= 2) is in
ns(j % 5) with labels app=app-(j % 20), tier=t(j % 3); pod 0 is canary0 (ns0,
app=canary0), pod 1 canary1 (ns1, app=canary1); the measured pod is
bench-* in ns0 with app=bench, the dataplane pod dp in ns0 with app=dp.

A generated policy i lives in ns(i % 5). Its podSelector: app=bench when
i % 20 == 0 (5 % of the policies select the measured pod), else one app
label of that namespace's pods (matchLabels, or matchExpressions In / with a
tier Exists). Its egress rules, 1 to 3 of: DNS to kube-dns in kube-system
(ns+pod selector, 53/UDP+TCP), pods of an app in the same namespace on
8080/TCP or 8000-8100/TCP, pods of the namespaces of a team, an ipBlock
/16 with a /24 except on 443/TCP, an ipBlock /24 on any port.
"""
import argparse
import json
import os
import random

NS = ["ns%d" % i for i in range(5)]
TEAMS = ["t0", "t1", "t2"]


def np(name, ns, pod_sel, egress):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"podSelector": pod_sel, "policyTypes": ["Egress"], "egress": egress}}


def dns_rule():
    return {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}


def app_of(rnd, nsi):
    # app-k is on pods j with j % 20 == k, j % 5 == nsi: k = nsi + 5m
    return "app-%d" % (nsi + 5 * rnd.randrange(4))


def policy(i, rnd):
    nsi = i % 5
    ns = NS[nsi]
    if i % 20 == 0:
        sel = {"matchLabels": {"app": "bench"}}
    else:
        kind = rnd.random()
        if kind < 0.6:
            sel = {"matchLabels": {"app": app_of(rnd, nsi)}}
        elif kind < 0.85:
            sel = {"matchExpressions": [{"key": "app", "operator": "In",
                                         "values": [app_of(rnd, nsi), app_of(rnd, nsi)]}]}
        else:
            sel = {"matchLabels": {"app": app_of(rnd, nsi)},
                   "matchExpressions": [{"key": "tier", "operator": "Exists"}]}
    rules = []
    for _ in range(rnd.randint(1, 3)):
        k = rnd.random()
        if k < 0.3:
            rules.append(dns_rule())
        elif k < 0.6:
            port = ({"port": 8080, "protocol": "TCP"} if rnd.random() < 0.7
                    else {"port": 8000, "endPort": 8100, "protocol": "TCP"})
            rules.append({"to": [{"podSelector": {"matchLabels": {"app": app_of(rnd, nsi)}}}],
                          "ports": [port]})
        elif k < 0.8:
            rules.append({"to": [{"namespaceSelector": {"matchLabels": {"team": rnd.choice(TEAMS)}}}]})
        elif k < 0.9:
            b = 100 + rnd.randrange(50)
            rules.append({"to": [{"ipBlock": {"cidr": "10.%d.0.0/16" % b, "except": ["10.%d.1.0/24" % b]}}],
                          "ports": [{"port": 443, "protocol": "TCP"}]})
        else:
            rules.append({"to": [{"ipBlock": {"cidr": "172.16.%d.0/24" % rnd.randrange(256)}}]})
    return np("np-%04d" % i, ns, sel, rules)


def lst(items):
    return {"apiVersion": "v1", "kind": "List", "items": items}


def write(d, name, obj):
    with open(os.path.join(d, name), "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--peers", default="10,1000,10000")
    ap.add_argument("--seed", type=int, default=5)
    a = ap.parse_args()
    sizes = sorted(int(x) for x in a.sizes.split(","))
    peers = [int(x) for x in a.peers.split(",") if x]
    rnd = random.Random(a.seed)
    os.makedirs(a.outdir, exist_ok=True)

    nss = [{"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "kube-system", "labels": {"team": "infra"}}}]
    for i, n in enumerate(NS):
        nss.append({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": n, "labels": {"team": TEAMS[i % 3], "env": "prod" if i < 3 else "dev"}}})
    write(a.outdir, "namespaces.json", lst(nss))

    pols = [policy(i, rnd) for i in range(sizes[-1])]
    for k in sizes:
        write(a.outdir, "policies-%d.json" % k, lst(pols[:k]))
        write(a.outdir, "del-%d.json" % k, lst(pols[sizes[0]:k]))
    canary = np("canary0-deny", "ns0", {"matchLabels": {"app": "canary0"}}, [dns_rule()])
    write(a.outdir, "bulk.json", lst(pols[sizes[0]:sizes[-1] - 1] + [canary]))
    write(a.outdir, "sel100.json", lst([np("sel-ns1", "ns1", {}, [dns_rule()])]))
    write(a.outdir, "noop.json", lst([np("noop", "nfb-empty", {}, [dns_rule()])]))
    for n in peers:
        to = []
        for j in range(n - 1):  # odd addresses: no two adjacent (netfence sends adjacent ones as one range)
            to.append({"ipBlock": {"cidr": "10.200.%d.%d/32" % (j // 125, 1 + 2 * (j % 125))}})
        to.append({"ipBlock": {"cidr": "203.0.113.80/32"}})
        write(a.outdir, "dp-%d.json" % n, lst([np("dp-peers", "ns0", {"matchLabels": {"app": "dp"}},
                                                   [{"to": to}])]))


if __name__ == "__main__":
    main()
