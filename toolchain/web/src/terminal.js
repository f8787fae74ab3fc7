// The terminal (xterm and its fit add-on), nine tenths of the page's script: its own module, so
// that boxer.js starts reading the image and compiling the runtime before this is parsed.
export { Terminal } from "@xterm/xterm";
export { FitAddon } from "@xterm/addon-fit";
