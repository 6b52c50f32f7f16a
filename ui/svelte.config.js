// Svelte 5 compiles <script lang="ts"> natively (type-only TypeScript); no preprocessing needed.
export default {};
