// Placeholder front end: proves the shell loads a bundled, CSP-clean script.
// The real UI arrives with the desktop issue.
const statusLine = document.querySelector<HTMLParagraphElement>('#status');
if (statusLine) {
  statusLine.textContent = 'Chat with your own documents. The app arrives with the desktop issue.';
}
export {};
