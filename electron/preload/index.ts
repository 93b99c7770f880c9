// The preload exposes one function per AgentApi method (never a generic invoke/send), typed from shared/contract.
import { contextBridge } from 'electron';

contextBridge.exposeInMainWorld('stint', Object.freeze({}));
