import t from 'tap';
import { VERSION } from '../lib/ops/version.js';
t.match(VERSION, /^\d+\.\d+\.\d+/);
