// The names people know OAuth providers by, from GoTrue's names for them
// (the keys of `/auth/v1/settings`' `external`, which the server's
// `/.well-known/quire` lists when enabled). Only the words are here: which
// providers a sign-in screen offers comes from the server.

const NAMES: Record<string, string> = {
  apple: 'Apple',
  azure: 'Microsoft',
  bitbucket: 'Bitbucket',
  discord: 'Discord',
  facebook: 'Facebook',
  figma: 'Figma',
  fly: 'Fly.io',
  github: 'GitHub',
  gitlab: 'GitLab',
  google: 'Google',
  kakao: 'Kakao',
  keycloak: 'Keycloak',
  linkedin: 'LinkedIn',
  linkedin_oidc: 'LinkedIn',
  notion: 'Notion',
  slack: 'Slack',
  slack_oidc: 'Slack',
  snapchat: 'Snapchat',
  spotify: 'Spotify',
  twitch: 'Twitch',
  twitter: 'X (Twitter)',
  workos: 'WorkOS',
  zoom: 'Zoom',
};

/** "GitHub" for `github`; a provider this list does not know keeps its own name, capitalised. */
export function providerName(provider: string): string {
  const known = NAMES[provider];
  if (known) return known;
  const words = provider.replace(/^custom:/, '').split(/[_\-\s]+/).filter(Boolean);
  return words.map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join(' ') || provider;
}
