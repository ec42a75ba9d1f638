"""A group of practices seen as one: the group manager's dashboard (`figures`: every location side by
side and in total; `views`: the page and its CSV)."""
