"""packaging/kubernetes: YAML syntax, the structure issue 9 asks for, and the
pipeline config in the ConfigMaps passing `ingestd -t`.

Every file is parsed with PyYAML (Debian python3-yaml). When kubectl is
installed, `kubectl kustomize` renders both variants and the rendered
objects are checked; without it the checks run on the files as written and
the test then skips (locally) or fails (CI=true, needs.require_tool): the
rendered objects were not checked.
"""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

import yaml

from needs import require_tool
from pkgtest import BIN, PACKAGING, PLUGINS, run

K8S = os.path.join(PACKAGING, "kubernetes")


def load_dir(d):
    docs = []
    for name in sorted(os.listdir(d)):
        if name.endswith(".yaml"):
            with open(os.path.join(d, name)) as f:
                docs += [x for x in yaml.safe_load_all(f) if x]
    return docs


def render(variant):
    """The objects of a variant: kustomize's output, or the files' own."""
    if shutil.which("kubectl"):
        r = subprocess.run(["kubectl", "kustomize", os.path.join(K8S, variant)],
                           capture_output=True, text=True)
        if r.returncode == 0:
            return list(yaml.safe_load_all(r.stdout)), True
        raise AssertionError("kubectl kustomize %s:\n%s" % (variant, r.stderr))
    docs = [d for d in load_dir(os.path.join(K8S, "base")) if d.get("kind") != "Kustomization"]
    return docs, False


def by_kind(docs):
    out = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def duration(v):
    m = re.match(r'^"?(\d+)s"?$', v)
    return int(m.group(1))


class Manifests(unittest.TestCase):
    def test_yaml_syntax(self):
        for variant in ("base", "statefulset"):
            for d in load_dir(os.path.join(K8S, variant)):
                self.assertIn("kind", d)
                self.assertIn("apiVersion", d)

    def check_workload(self, w, docs):
        spec = w["spec"]
        pod = spec["template"]["spec"]
        labels = spec["template"]["metadata"]["labels"]
        self.assertEqual(spec["selector"]["matchLabels"],
                         {k: labels[k] for k in spec["selector"]["matchLabels"]})
        c = pod["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(ports, {"http": 8080, "admin": 2020})
        self.assertEqual(c["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "admin"})
        self.assertEqual(c["livenessProbe"]["httpGet"], {"path": "/healthz", "port": "admin"})
        # drain_delay, not a preStop sleep, keeps serving while the endpoint
        # leaves the Service; the pod must outlive drain + shutdown.
        self.assertNotIn("lifecycle", c)
        main = self.config_files(docs)["ingestd.toml"]
        shutdown = duration(re.search(r"(?m)^shutdown_timeout = (\S+)", main).group(1))
        drain = duration(re.search(r"(?m)^drain_delay = (\S+)", main).group(1))
        self.assertGreaterEqual(drain, 5)
        self.assertGreater(pod["terminationGracePeriodSeconds"], drain + shutdown)
        self.assertRegex(main, r'(?m)^admin = "0\.0\.0\.0:2020"')
        self.assertRegex(main, r"(?m)^watch_config = true")
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        self.assertFalse(c["securityContext"]["allowPrivilegeEscalation"])
        self.assertEqual(pod["serviceAccountName"], "ingestd")
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        conf_d = vols[mounts["/etc/ingestd/conf.d"]]
        self.assertIn("configMap", conf_d, "conf.d is a ConfigMap mounted as a directory")
        self.assertFalse([m for m in c["volumeMounts"] if "subPath" in m],
                         "subPath mounts never see ConfigMap updates")
        self.assertIn("/var/lib/ingestd", mounts)
        return labels, mounts, vols

    def config_files(self, docs):
        files = {}
        for cm in by_kind(docs)["ConfigMap"]:
            for k, v in cm["data"].items():
                files[k if cm["metadata"]["name"] == "ingestd-main" else "conf.d/" + k] = v
        return files

    def check_common(self, docs, workload_kind):
        kinds = by_kind(docs)
        for k in ("ServiceAccount", "ConfigMap", "Secret", "Service", "HorizontalPodAutoscaler",
                  "PodDisruptionBudget", workload_kind):
            self.assertIn(k, kinds)
        sa = kinds["ServiceAccount"][0]
        self.assertRegex(sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
                         r"^arn:aws:iam::\d{12}:role/")
        hpa = kinds["HorizontalPodAutoscaler"][0]
        self.assertEqual(hpa["apiVersion"], "autoscaling/v2")
        self.assertEqual(hpa["spec"]["scaleTargetRef"]["kind"], workload_kind)
        self.assertEqual(hpa["spec"]["metrics"][0]["resource"]["name"], "cpu")
        w = kinds[workload_kind][0]
        labels, mounts, vols = self.check_workload(w, docs)
        # Every selector selects the workload's pods.
        for svc in kinds["Service"]:
            sel = svc["spec"]["selector"]
            self.assertEqual(sel, {k: labels.get(k) for k in sel}, svc["metadata"]["name"])
        pdb = kinds["PodDisruptionBudget"][0]["spec"]["selector"]["matchLabels"]
        self.assertEqual(pdb, {k: labels.get(k) for k in pdb})
        self.assertEqual(len(kinds.get("Deployment", [])) + len(kinds.get("StatefulSet", [])), 1)
        return w, mounts, vols

    def check_config(self, docs, secret_mount):
        """The ConfigMaps and the Secret, laid out as the pod sees them, pass -t."""
        tmp = tempfile.mkdtemp(prefix="ingestd-k8s-")
        os.makedirs(os.path.join(tmp, "conf.d"))
        secret_dir = os.path.join(tmp, "secrets")
        os.makedirs(secret_dir)
        for name, text in self.config_files(docs).items():
            text = text.replace(secret_mount, secret_dir)
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
        secret = by_kind(docs)["Secret"][0]
        for k, v in secret["stringData"].items():
            with open(os.path.join(secret_dir, k), "w") as f:
                f.write(v)
        r = run([BIN, "-t", "-c", os.path.join(tmp, "ingestd.toml"), "--plugins-dir", PLUGINS],
                check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        return tmp

    def test_base(self):
        docs, rendered = render("base")
        w, mounts, vols = self.check_common(docs, "Deployment")
        self.assertIn("emptyDir", vols[mounts["/var/lib/ingestd"]])
        secret_mount = [p for p, n in mounts.items() if "secret" in vols[n]][0]
        self.check_config(docs, secret_mount)
        if not rendered:
            require_tool("kubectl")  # skips or fails: kustomize's output was not checked
        self.assertEqual(w["metadata"]["labels"]["app.kubernetes.io/name"], "ingestd")

    def test_statefulset(self):
        if not shutil.which("kubectl"):
            docs = [d for d in load_dir(os.path.join(K8S, "statefulset"))
                    if d.get("kind") not in ("Kustomization", "ConfigMap")]
            self.assertIn("StatefulSet", by_kind(docs))
            require_tool("kubectl")  # skips or fails: kustomize's output was not checked
        docs, _ = render("statefulset")
        w, mounts, vols = self.check_common(docs, "StatefulSet")
        claims = {c["metadata"]["name"]: c for c in w["spec"]["volumeClaimTemplates"]}
        self.assertIn(mounts["/var/lib/ingestd"], claims)
        self.assertNotIn(mounts["/var/lib/ingestd"], vols)
        self.assertEqual(w["spec"]["serviceName"], "ingestd-headless")
        outputs = self.config_files(docs)["conf.d/50-outputs.toml"]
        self.assertEqual(len(re.findall(r'(?m)^buffer = "disk"', outputs)),
                         len(re.findall(r'(?m)^plugin = ', outputs)))
        secret_mount = [p for p, n in mounts.items() if n in vols and "secret" in vols[n]][0]
        self.check_config(docs, secret_mount)


if __name__ == "__main__":
    unittest.main()
