from ie_core import rawheaders


def test_remove_folded_fields_and_keep_everything_else_exactly():
    raw = (b"Received: a\r\nX-Spam: Yes\r\n\tcontinued\r\nSubject: s\r\n"
           b"x-ie-filter-score: 99\r\n\r\nX-Spam: in body stays\r\n")
    out = rawheaders.remove(raw, lambda n: n.startswith(("x-spam", "x-ie-")))
    assert out == b"Received: a\r\nSubject: s\r\n\r\nX-Spam: in body stays\r\n"


def test_prepend_uses_the_message_line_ending_and_strips_control_characters():
    out = rawheaders.prepend(b"Subject: s\n\nbody\n", [("X-A", "1\r\nBcc: evil@x")])
    assert out == b"X-A: 1  Bcc: evil@x\nSubject: s\n\nbody\n"
