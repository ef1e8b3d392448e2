from django.db import migrations

from clientdesk.clients import search_index


class Migration(migrations.Migration):
    dependencies = [("clients", "0001_initial")]

    operations = [migrations.RunPython(search_index.install, search_index.uninstall)]
