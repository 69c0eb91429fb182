# Multi-stage image. Expects DATABASE_URL (postgresql://user:pass@host:5432/db):
# the image runs no database of its own. Migrations run at start.
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 affiliate
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY alembic.ini ./
COPY migrations ./migrations
COPY service ./service
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    AFFILIATE_ENV=production
USER affiliate
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz').status != 200)"
CMD ["sh", "-c", "python -m service migrate && AFFILIATE_MIGRATE=0 exec python -m service serve --host 0.0.0.0 --port 8000 --workers ${WORKERS:-2}"]
