"""Card-update messages whose outbox delivery was dead-lettered before the destination recorded it
(`on_dead`) stayed "pending" on their case for ever: they read failed, as one given up now does.
Their case's timeline has no line for it (the dead letter in the outbox admin keeps the error); a
manager may redeliver them. Running it twice changes nothing."""

from django.db import migrations


def dead_messages_failed(apps, schema_editor):
    Delivery = apps.get_model("integrations", "Delivery")
    DunningMessage = apps.get_model("billing", "DunningMessage")
    dead = Delivery.objects.filter(destination="member_message", status="dead").values_list("event__payload",
                                                                                              "finished_at")
    for payload, finished_at in dead.iterator():
        message_id = (payload or {}).get("message_id")
        if message_id:
            DunningMessage.objects.filter(pk=message_id, status="pending").update(
                status="failed", status_updated_at=finished_at)


class Migration(migrations.Migration):

    dependencies = [
        ("integrations", "0006_delivery_sending"),
        ("billing", "0010_message_may_have_been_sent"),
    ]

    operations = [migrations.RunPython(dead_messages_failed, migrations.RunPython.noop)]
