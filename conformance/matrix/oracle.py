#!/usr/bin/env python3
"""oracle.py: the expected egress verdicts of the matrix suite.

An independent model of Kubernetes NetworkPolicy v1 EGRESS semantics
(https://kubernetes.io/docs/concepts/services-networking/network-policies/,
the networking.k8s.io/v1 API reference, and the behaviour the Kubernetes e2e
netpol suite and Cyclonus check). It never looks at netfence's code, state
file or ruleset: it keeps its own model of the cluster in a JSON file, which
the suite updates with every object it gives netfence.

    oracle.py init MODEL CLUSTER.json        start a model (pods, external hosts)
    oracle.py apply MODEL FILE...            kubectl apply of NetworkPolicy/Namespace/Pod(/List)
    oracle.py label MODEL namespace|pod NAME [-n NS] k=v... k-... [--overwrite]
    oracle.py delete MODEL networkpolicy|pod NAME [-n NS]   (pod: its containerPorts go)
    oracle.py policies MODEL                 "NS NAME" of every policy in the model
    oracle.py labels MODEL                   the model's labels (to compare with a baseline)
    oracle.py expect MODEL                   one line per probe:
                                             SRC DST PROTO PORT FAMILY ADDR VERDICT
                                             VERDICT: allow | deny | loopback

Semantics implemented (egress only; ingress rules are parsed and ignored,
since netfence does not enforce ingress yet):
  * policyTypes defaults as SetDefaults_NetworkPolicy: Ingress always, plus
    Egress iff spec.egress has at least one rule. An explicit policyTypes is
    taken as given (policyTypes [Ingress] with egress rules: egress not enforced).
  * A pod selected (spec.podSelector, in the policy's namespace) by no policy
    with Egress in its policyTypes may send anything. Otherwise it may send
    exactly what the union of the egress rules of those policies allows (a
    policy with no rules contributes nothing: deny all).
  * A rule allows a packet iff some peer of `to` matches the destination (no
    `to`, or `to: []`, = every destination) and some entry of `ports` matches
    (no `ports`, or `ports: []`, = every port and protocol).
  * Peers: podSelector alone = pods of the policy's namespace; namespaceSelector
    alone = every pod of the matching namespaces; both = pods matching
    podSelector in namespaces matching namespaceSelector; ipBlock = addresses in
    cidr and in none of except (pod and non-pod addresses alike; only the
    address family of the cidr).
  * Ports: protocol defaults to TCP; no port = every port of that protocol;
    numeric port, or port..endPort; a named port matches a destination POD
    that has a containerPort with that name AND that protocol, at that
    containerPort number; non-pod destinations never match a named port.
  * Label selectors: matchLabels AND matchExpressions (In, NotIn, Exists,
    DoesNotExist; NotIn matches when the key is absent); {} selects everything.
  * Namespaces carry kubernetes.io/metadata.name=<name> in addition to their labels;
    a namespace without a Namespace object has just that label.
  * Loopback (a pod to its own address) never leaves the pod's network
    namespace: the verdict is "loopback", ignored by the suite like the e2e
    suite's ignoreLoopback.
"""
import ipaddress
import json
import sys

import yaml

PROBES = [("tcp", 80), ("tcp", 81), ("udp", 80), ("udp", 81)]
FAMILIES = ["4", "6"]
NS_NAME_LABEL = "kubernetes.io/metadata.name"


def die(msg):
    print("oracle: " + msg, file=sys.stderr)
    sys.exit(2)


def load(path):
    with open(path) as f:
        return json.load(f)


def save(path, model):
    with open(path + ".tmp", "w") as f:
        json.dump(model, f, indent=1, sort_keys=True)
    import os
    os.replace(path + ".tmp", path)


# ---------------------------------------------------------------- selectors

def selector_matches(sel, labels):
    """metav1.LabelSelector semantics. sel is a dict ({} = everything)."""
    if sel is None:
        sel = {}
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != str(v):
            return False
    for e in sel.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], [str(v) for v in e.get("values") or []]
        if op == "In":
            if key not in labels or labels[key] not in values:
                return False
        elif op == "NotIn":
            if key in labels and labels[key] in values:
                return False
        elif op == "Exists":
            if key not in labels:
                return False
        elif op == "DoesNotExist":
            if key in labels:
                return False
        else:
            die("unknown operator " + op)
    return True


def ns_labels(model, ns):
    labels = dict(model["namespaces"].get(ns, {}))
    labels[NS_NAME_LABEL] = ns
    return labels


# ---------------------------------------------------------------- policies

def policy_types(spec):
    pt = spec.get("policyTypes")
    if pt:  # explicitly given (an empty list is defaulted, as the API server does)
        return set(pt)
    types = {"Ingress"}
    if spec.get("egress"):
        types.add("Egress")
    return types


def peer_matches(model, pol_ns, peer, dst, addr):
    """dst: a pod dict or None (a non-pod address)."""
    if "ipBlock" in peer and peer["ipBlock"] is not None:
        ib = peer["ipBlock"]
        net = ipaddress.ip_network(ib["cidr"], strict=False)
        a = ipaddress.ip_address(addr)
        if a.version != net.version or a not in net:
            return False
        for ex in ib.get("except") or []:
            exn = ipaddress.ip_network(ex, strict=False)
            if exn.version == a.version and a in exn:
                return False
        return True
    if dst is None:  # podSelector/namespaceSelector only select pods
        return False
    pod_sel = peer.get("podSelector")
    ns_sel = peer.get("namespaceSelector")
    if pod_sel is None and ns_sel is None:
        die("peer with no selector: %r" % (peer,))
    if ns_sel is None:
        if dst["namespace"] != pol_ns:
            return False
    elif not selector_matches(ns_sel, ns_labels(model, dst["namespace"])):
        return False
    if pod_sel is not None and not selector_matches(pod_sel, dst["labels"]):
        return False
    return True


def port_matches(entry, dst, proto, port):
    want_proto = (entry.get("protocol") or "TCP").upper()
    if want_proto != proto.upper():
        return False
    p = entry.get("port")
    if p is None:
        return True
    if isinstance(p, int):
        end = entry.get("endPort")
        return p <= port <= (end if end is not None else p)
    if isinstance(p, str) and p.isdigit():  # IntOrString given as a numeric string
        return int(p) == port
    # Named port: the destination pod's containerPort of that name and protocol.
    if dst is None:
        return False
    for cp in dst.get("ports") or []:
        if cp.get("name") == p and (cp.get("protocol") or "TCP").upper() == want_proto \
                and int(cp["containerPort"]) == port:
            return True
    return False


def rule_allows(model, pol_ns, rule, dst, addr, proto, port):
    to = rule.get("to") or []
    if to and not any(peer_matches(model, pol_ns, peer, dst, addr) for peer in to):
        return False
    ports = rule.get("ports") or []
    if ports and not any(port_matches(e, dst, proto, port) for e in ports):
        return False
    return True


def egress_policies_for(model, pod):
    out = []
    for key in sorted(model["policies"]):
        pol = model["policies"][key]
        ns = pol["metadata"].get("namespace", "default")
        spec = pol.get("spec") or {}
        if ns != pod["namespace"]:
            continue
        if "Egress" not in policy_types(spec):
            continue
        if not selector_matches(spec.get("podSelector") or {}, pod["labels"]):
            continue
        out.append(pol)
    return out


def verdict(model, src, dst, addr, proto, port):
    if dst is src:
        return "loopback"
    pols = egress_policies_for(model, src)
    if not pols:
        return "allow"
    for pol in pols:
        ns = pol["metadata"].get("namespace", "default")
        for rule in (pol.get("spec") or {}).get("egress") or []:
            if rule_allows(model, ns, rule or {}, dst, addr, proto, port):
                return "allow"
    return "deny"


# ---------------------------------------------------------------- model updates

def documents(path):
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            if doc is None:
                continue
            if doc.get("kind") == "List":
                for item in doc.get("items") or []:
                    yield item
            else:
                yield doc


def find_pod(model, ns, name):
    for p in model["pods"]:
        if p["namespace"] == ns and p["name"] == name:
            return p
    die("no pod %s/%s in the model" % (ns, name))


def cmd_apply(model, files):
    for path in files:
        for doc in documents(path):
            kind = doc.get("kind")
            md = doc.get("metadata") or {}
            if kind == "NetworkPolicy":
                ns = md.get("namespace", "default")
                model["policies"]["%s/%s" % (ns, md["name"])] = doc
            elif kind == "Namespace":
                model["namespaces"][md["name"]] = {k: str(v) for k, v in (md.get("labels") or {}).items()}
            elif kind == "Pod":
                pod = find_pod(model, md.get("namespace", "default"), md["name"])
                pod["labels"] = {k: str(v) for k, v in (md.get("labels") or {}).items()}
                ports = []
                for c in (doc.get("spec") or {}).get("containers") or []:
                    ports.extend(c.get("ports") or [])
                pod["ports"] = ports
            else:
                die("%s: unsupported kind %r" % (path, kind))


def relabel(labels, args, overwrite):
    for a in args:
        if a.endswith("-") and "=" not in a:
            labels.pop(a[:-1], None)
        elif "=" in a:
            k, v = a.split("=", 1)
            if k in labels and labels[k] != v and not overwrite:
                die("label %s exists; --overwrite needed" % k)
            labels[k] = v
        else:
            die("bad label argument " + a)


def cmd_label(model, args):
    overwrite = "--overwrite" in args
    args = [a for a in args if a != "--overwrite"]
    ns = "default"
    if "-n" in args:
        i = args.index("-n")
        ns = args[i + 1]
        del args[i:i + 2]
    kind, name, changes = args[0], args[1], args[2:]
    if kind == "namespace":
        labels = model["namespaces"].setdefault(name, {})
        relabel(labels, changes, overwrite)
    elif kind == "pod":
        relabel(find_pod(model, ns, name)["labels"], changes, overwrite)
    else:
        die("label: unknown kind " + kind)


def cmd_delete(model, args):
    ns = "default"
    if "-n" in args:
        i = args.index("-n")
        ns = args[i + 1]
        del args[i:i + 2]
    if args[0] == "pod":
        # The Pod registration goes (its containerPorts); the pod stays attached
        # with the labels its CNI ADD gave it (the suite never makes them differ).
        for name in args[1:]:
            find_pod(model, ns, name)["ports"] = []
        return
    if args[0] not in ("networkpolicy", "networkpolicies", "netpol"):
        die("delete: unsupported kind " + args[0])
    for name in args[1:]:
        if model["policies"].pop("%s/%s" % (ns, name), None) is None:
            die("delete: no policy %s/%s" % (ns, name))


def cmd_expect(model):
    targets = [(p["key"], p) for p in model["pods"]] + [(e["key"], None) for e in model["externals"]]
    addrs = {p["key"]: p["ips"] for p in model["pods"]}
    addrs.update({e["key"]: e["ips"] for e in model["externals"]})
    for src in model["pods"]:
        for key, dst in targets:
            for fam in FAMILIES:
                addr = addrs[key][fam]
                for proto, port in PROBES:
                    v = verdict(model, src, dst, addr, proto, port)
                    print(src["key"], key, proto, port, fam, addr, v)


def main(argv):
    if len(argv) < 3:
        die(__doc__)
    cmd, path, rest = argv[1], argv[2], argv[3:]
    if cmd == "init":
        cluster = load(rest[0])
        for p in cluster["pods"]:
            p.setdefault("ports", [])
        save(path, {"pods": cluster["pods"], "externals": cluster["externals"],
                    "namespaces": {}, "policies": {}})
        return
    model = load(path)
    if cmd == "apply":
        cmd_apply(model, rest)
    elif cmd == "label":
        cmd_label(model, rest)
    elif cmd == "delete":
        cmd_delete(model, rest)
    elif cmd == "policies":
        for key in sorted(model["policies"]):
            print(*key.split("/", 1))
        return
    elif cmd == "labels":
        print(json.dumps({"namespaces": model["namespaces"],
                          "pods": {p["key"]: p["labels"] for p in model["pods"]}}, sort_keys=True))
        return
    elif cmd == "expect":
        cmd_expect(model)
        return
    else:
        die("unknown command " + cmd)
    save(path, model)


if __name__ == "__main__":
    main(sys.argv)
