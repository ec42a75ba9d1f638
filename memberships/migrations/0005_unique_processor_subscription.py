from django.db import migrations, models


def refuse_duplicates(apps, schema_editor):
    """Stop with the memberships to untangle rather than fail on the constraint without a word."""
    Membership = apps.get_model("memberships", "Membership")
    shared = (Membership.objects.exclude(processor_subscription_id="").values("processor_subscription_id")
              .annotate(n=models.Count("id")).filter(n__gt=1).values_list("processor_subscription_id", flat=True))
    problems = []
    for ref in shared[:20]:
        ids = list(Membership.objects.filter(processor_subscription_id=ref).values_list("id", flat=True))
        problems.append(f"{ref}: memberships {ids}")
    if problems:
        raise RuntimeError("Several memberships carry the same processor subscription id; clear it on the wrong "
                           "ones (Membership.processor_subscription_id = '') and migrate again:\n"
                           + "\n".join(problems))


class Migration(migrations.Migration):

    dependencies = [
        ("memberships", "0004_chart_flags_dunning_events"),
    ]

    operations = [
        migrations.RunPython(refuse_duplicates, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="membership",
            constraint=models.UniqueConstraint(
                condition=models.Q(("processor_subscription_id", ""), _negated=True),
                fields=("processor_subscription_id",),
                name="one_membership_per_processor_subscription",
            ),
        ),
    ]
