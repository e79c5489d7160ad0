# Switchboard node agent image: `docker build -t switchboard:0.1.0 .`
# The build stage produces the single-file esbuild bundle; the runtime stage holds only that file, Node 24
# and the netfilter tools the backends drive.

# ---- build ------------------------------------------------------------------------------------------------
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would run tsc before the sources are copied; the bundle does not need it.
# esbuild still works: its binary comes from the @esbuild/linux-* optional dependency, not a postinstall.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run bundle

# ---- runtime ----------------------------------------------------------------------------------------------
FROM node:24-bookworm-slim AS runtime
# iptables ships both iptables-legacy-* and iptables-nft-*; the agent picks one per node at start
# (src/kernel/iptables-mode.ts; SWITCHBOARD_IPTABLES_MODE=legacy|nft overrides). ipset and ipvsadm are for the
# ipvs backend, nftables for the nftables backend, conntrack for clearing stale UDP flows, iproute2 for
# addresses and routes, kmod for loading ip_vs/nf_* modules from the host's /lib/modules.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables ipset ipvsadm conntrack nftables iproute2 kmod \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/dist/switchboard.mjs /usr/local/lib/switchboard/switchboard.mjs
# exec, so node is PID 1 and receives the kubelet's SIGTERM directly.
RUN printf '#!/bin/sh\nexec node /usr/local/lib/switchboard/switchboard.mjs "$@"\n' > /usr/local/bin/switchboard \
 && chmod 0755 /usr/local/bin/switchboard
ENV NODE_ENV=production
# Root: programming netfilter needs CAP_NET_ADMIN in the host network namespace (the pod is privileged).
USER root
ENTRYPOINT ["switchboard"]
CMD ["run"]
