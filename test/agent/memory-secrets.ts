// Unit tests of code above the keychain use the headless agent's memory store (the keychain itself is tested for real).
export { MemorySecretStore } from '../../agent/core/secrets/memory-store';
