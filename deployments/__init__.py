"""What turns eoflows' flows into things that run elsewhere: work pools, Kubernetes manifests, deployments."""
