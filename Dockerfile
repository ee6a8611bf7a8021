# syntax=docker/dockerfile:1
# didgate: multi-stage build on the current Node LTS slim image.

FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY bench ./bench
COPY test ./test
RUN npm run build

FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY package.json ./
COPY config ./config
RUN mkdir -p /etc/didgate /var/lib/didgate && cp config/didgate.yaml config/routes.yaml /etc/didgate/ \
 && sed -i 's#file: config/routes.yaml#file: routes.yaml#' /etc/didgate/didgate.yaml \
 && chown -R node:node /var/lib/didgate
# SIP (UDP and TCP), SIP over TLS, SMPP, admin HTTP (/metrics /healthz /readyz)
EXPOSE 5060/udp 5060/tcp 5061/tcp 2775/tcp 9464/tcp
ENV DIDGATE_ADMIN_LISTEN=0.0.0.0:9464 \
    DIDGATE_STATE_DIR=/var/lib/didgate
USER node
VOLUME ["/etc/didgate", "/var/lib/didgate"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9464/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["serve", "--config", "/etc/didgate/didgate.yaml"]
