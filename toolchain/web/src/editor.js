// The code pane: CodeMirror 6 with Python highlighting, indentation (4 spaces, as PEP 8) and bracket matching.
// Ctrl/Cmd+Enter runs what it holds, as the "Run code" button does.

import { EditorView, basicSetup } from "codemirror";
import { keymap } from "@codemirror/view";
import { python } from "@codemirror/lang-python";
import { indentUnit } from "@codemirror/language";

export function createEditor(parent, onRun) {
  const run = () => { onRun(); return true; };
  return new EditorView({
    doc: "",
    parent,
    extensions: [keymap.of([{ key: "Mod-Enter", run }]), basicSetup, python(), indentUnit.of("    "), EditorView.lineWrapping],
  });
}
