# imgsearch HTTP API. Build: docker build -t imgsearch .
# Run:   docker run -p 8000:8000 -v $PWD/shop:/data/shop imgsearch
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
CMD ["sh", "-c", "imgsearch serve \"$IMGSEARCH_COLLECTION\" --host 0.0.0.0 --port 8000 --workers ${IMGSEARCH_WORKERS:-1}"]
