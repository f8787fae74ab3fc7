// The code pane: CodeMirror 6 with Python highlighting, indentation (4 spaces, as PEP 8) and bracket matching.
// Ctrl/Cmd+Enter runs what it holds, as the "Run code" button does. Completions are offered as one types but
// taken only with Tab: Enter always ends the line, so `import sys` + Enter never becomes `import SystemExit`
// because the list happened to be open when Enter was pressed.

import { EditorView, basicSetup } from "codemirror";
import { keymap } from "@codemirror/view";
import { python } from "@codemirror/lang-python";
import { indentUnit } from "@codemirror/language";
import { acceptCompletion, autocompletion, closeCompletion, moveCompletionSelection } from "@codemirror/autocomplete";

const completionKeys = [
  { key: "Tab", run: acceptCompletion },
  { key: "Escape", run: closeCompletion },
  { key: "ArrowDown", run: moveCompletionSelection(true) },
  { key: "ArrowUp", run: moveCompletionSelection(false) },
];

export function createEditor(parent, onRun) {
  const run = () => { onRun(); return true; };
  return new EditorView({
    doc: "",
    parent,
    extensions: [keymap.of([{ key: "Mod-Enter", run }, ...completionKeys]), basicSetup, autocompletion({ defaultKeymap: false }),
      python(), indentUnit.of("    "), EditorView.lineWrapping],
  });
}
