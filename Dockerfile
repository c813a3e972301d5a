# imgsearch HTTP API. Build: docker build -t imgsearch .
# Run:   docker run -p 8000:8000 -v $PWD/shop:/data/collection imgsearch
#
# The server listens on 0.0.0.0 inside the container, which is beyond loopback: searches
# are open, but writes (PUT/DELETE /v1/items, POST /v1/items:batch) need a key with scope
# write, and /metrics and /v1/report one with scope admin. Until a write key exists,
# writes answer 401. Make one (only its hash is stored; the token is printed once):
#   docker run --rm -v $PWD/shop:/data/collection imgsearch \
#       imgsearch keys create -c /data/collection --scope write --name shop-backend
# or keep the keys file outside the collection, as a secret, and name it:
#   -v $PWD/secrets/api_keys.json:/run/secrets/api_keys.json:ro \
#   -e IMGSEARCH_API_KEYS_FILE=/run/secrets/api_keys.json
# Clients send `Authorization: Bearer TOKEN`. Requests must name an allowed Host:
# localhost and 127.0.0.1 are; add the names clients use with
#   -e IMGSEARCH_ALLOWED_HOSTS=search.example.com,10.0.0.5
# and the origins of pages that call the API from a browser with IMGSEARCH_CORS_ORIGINS.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    IMGSEARCH_COLLECTION=/data/collection
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
# torch pinned to the CPU build first, so no dependency pulls a CUDA build
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install -c constraints.txt .
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; \
sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health').status != 200)"
CMD ["sh", "-c", "imgsearch serve -c \"$IMGSEARCH_COLLECTION\" --host 0.0.0.0 --port 8000 --workers ${IMGSEARCH_WORKERS:-1}"]
