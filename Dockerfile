FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml requirements.lock README.md manage.py ./
COPY chatadmin ./chatadmin
COPY templates ./templates
COPY static ./static
# Editable install (templates/ and static/ are served from the source tree), runtime
# dependencies only, at the versions of requirements.lock.
RUN pip install -c requirements.lock -e . && useradd --create-home --uid 10001 chatadmin
USER chatadmin
EXPOSE 8000
CMD ["sh", "-c", "python manage.py migrate && python manage.py runserver --host 0.0.0.0 --port 8000"]
