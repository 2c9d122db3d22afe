"""The service mesh on Gateway OSS: the sidecar injector (admission webhook) and the egress-routes reconciler.

`config` (settings), `sidecar` (what a meshed pod gets) and `routes` (the namespace's egress routes) are pure and
import neither kopf nor aiohttp, so the Pulumi program can use their names; `server` is the HTTPS admission
server and `reconciler` the loop that keeps each namespace's routes and Secret in step with its meshed pods.
"""
