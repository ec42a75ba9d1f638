from django import template

register = template.Library()


@register.filter
def cents(value):
    """Integer cents as dollars: 19900 -> $199.00."""
    if value is None or value == "":
        return ""
    value = int(value)
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value) / 100:,.2f}"


@register.filter
def get_item(mapping, key):
    return mapping.get(key) if hasattr(mapping, "get") else None
