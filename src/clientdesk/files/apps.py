"""Files: uploads stored by content hash, checked by content, downloaded safely, and the
unattached ones removed after a day."""

from django.apps import AppConfig


class FilesConfig(AppConfig):
    name = "clientdesk.files"
    label = "files"

    def ready(self) -> None:
        from clientdesk.core.jobs import job_register
        from clientdesk.files.services import files_cleanup_job

        job_register(name="files.cleanup", run=files_cleanup_job, every_seconds=600.0)
