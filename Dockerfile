# rules-engine container. Build: docker build -t rules-engine .
# Run (dry-run, rules and config mounted read-only, state on a volume):
#   docker run --rm --stop-timeout 30 -p 8080:8080 -v $PWD/rules:/rules:ro -v $PWD/engine.yaml:/config/engine.yaml:ro \
#     -v rules-engine-state:/state --env-file secrets.env rules-engine
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 RULES_ENGINE_STATE_DIR=/state
WORKDIR /app
COPY pyproject.toml README.md ./
COPY rules_engine ./rules_engine
COPY schemas ./schemas
# The postgres extra (psycopg) for the PostgreSQL store: deploy/cluster's workers and intakes run this image.
RUN pip install --no-cache-dir '.[postgres]' && useradd --system --uid 10001 rules && mkdir -p /state && chown rules /state
USER rules
VOLUME ["/state"]
# The port is pinned (--port below) as the state dir is (the variable): EXPOSE, -p and the health check
# all mean 8080, whatever server.port a config written for a host says.
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz').status == 200 else 1)"
ENTRYPOINT ["rules-engine"]
CMD ["run", "/rules", "--config", "/config/engine.yaml", "--host", "0.0.0.0", "--port", "8080"]
