"""The upload form: a file, or pasted text with a name."""
from __future__ import annotations

from django import forms
from django.conf import settings

FORMAT_CHOICES = [
    ("", "Detect from the name or content"),
    ("csv", "CSV"),
    ("jsonl", "JSON Lines"),
    ("json", "JSON"),
    ("html", "HTML"),
    ("markdown", "Markdown"),
    ("text", "Plain text"),
]


class UploadForm(forms.Form):
    file = forms.FileField(required=False, help_text="CSV, JSON, JSON Lines, HTML, Markdown or plain text.")
    name = forms.CharField(required=False, max_length=255, help_text="Needed for pasted text; renames an upload.")
    text = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 8}), label="Or paste text")
    format = forms.ChoiceField(required=False, choices=FORMAT_CHOICES)
    encoding = forms.CharField(required=False, max_length=32, help_text="Only if not UTF-8, e.g. cp1252.")
    chunk_size = forms.IntegerField(required=False, min_value=1, max_value=settings.QUERN_MAX_CHUNK_SIZE)

    def clean(self):
        data = super().clean()
        has_file, has_text = bool(data.get("file")), bool((data.get("text") or "").strip())
        if has_file == has_text:
            raise forms.ValidationError("Choose a file or paste some text (one of the two).")
        if has_text and not (data.get("name") or "").strip():
            self.add_error("name", "Give the pasted text a name, e.g. notes.md.")
        return data
