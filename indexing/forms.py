"""The upload form: a file, or pasted text with a name; the options checked by the schema layer."""

from __future__ import annotations

from typing import Any

from django import forms

from indexing.errors import QuernError
from indexing.schemas import FORMAT_LABELS, MAX_NAME, SubmitOptions, validated

FORMAT_CHOICES = [("", "Detect from the name or content"), *FORMAT_LABELS.items()]


class UploadForm(forms.Form):
    file = forms.FileField(required=False, help_text="CSV, JSON, JSON Lines, HTML, Markdown or plain text.")
    name = forms.CharField(
        required=False, max_length=MAX_NAME, help_text="Needed for pasted text; renames an upload."
    )
    text = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 8}), label="Or paste text")
    format = forms.ChoiceField(required=False, choices=FORMAT_CHOICES)
    encoding = forms.CharField(required=False, help_text="Only if not UTF-8, e.g. cp1252.")
    # Text, not IntegerField: the one set of rules (and messages) is the schema's.
    chunk_size = forms.CharField(required=False, widget=forms.NumberInput(attrs={"min": 1}))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        has_file, has_text = bool(data.get("file")), bool((data.get("text") or "").strip())
        if has_file == has_text:
            raise forms.ValidationError("Choose a file or paste some text (one of the two).")
        if has_text and not (data.get("name") or "").strip():
            self.add_error("name", "Give the pasted text a name, e.g. notes.md.")
        fields = ("format", "encoding", "chunk_size")
        try:
            data["options"] = validated(SubmitOptions, {f: data.get(f) for f in fields})
        except QuernError as error:
            self.add_error(error.field if error.field in fields else None, error.message)
        return data
