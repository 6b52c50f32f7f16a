import { describe, expect, it } from 'vitest';
import { providerName } from './providers';

describe('providerName', () => {
  it('names the providers people know', () => {
    expect(providerName('github')).toBe('GitHub');
    expect(providerName('gitlab')).toBe('GitLab');
    expect(providerName('azure')).toBe('Microsoft');
    expect(providerName('linkedin_oidc')).toBe('LinkedIn');
  });

  it('keeps the name of a provider it does not know', () => {
    expect(providerName('vercel_marketplace')).toBe('Vercel Marketplace');
    expect(providerName('custom:acme-sso')).toBe('Acme Sso');
  });
});
